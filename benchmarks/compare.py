"""Side-by-side comparison of one workload in one process: netcore on each backend, PyTorch with the same thread
count, scikit-learn (W1), plain NumPy/CuPy, and the GEMM floor. ``netcore bench`` and ``python -m benchmarks.compare``.

Repetitions are interleaved (every contender once, then again), so a noisy neighbour slows all of them alike, and
each contender's median is reported with its ratios to PyTorch and to the floors measured in the same run. Noise only
ever adds time, so the same ratios between each contender's fastest runs are reported beside them ("best").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from benchmarks import contenders as c
from benchmarks.workloads import CELLS, INFERENCE_CASES, WORKLOADS, InferenceWorkload, Workload
from netcore.errors import BackendUnavailableError, ConfigurationError, NetcoreError
from netcore.plot import load_pyplot

#: Seconds of quiet before each timed run, so the thread pools of the previous contender (OpenBLAS, OpenMP, Numba)
#: have stopped spinning and do not steal the cores from the next one.
PAUSE = 0.5


#: The last word of a contender's name when the workload runs several cases side by side (W6's recurrent cells,
#: the inference workload's batch sizes).
CASES = (*CELLS, *INFERENCE_CASES)


def _for_case(setup, case: str):
    """A contender's setup run on one case of the workload."""
    return lambda workload, threads: setup(workload.with_case(case), threads)


def _case_table(workload, contenders: dict) -> dict:
    """Every contender on every case of the workload, each case's rows together."""
    return {f"{name} {case}": _for_case(setup, case) for case in workload.cases for name, setup in contenders.items()}


def contender_table(workload: Workload) -> dict:
    """Name -> setup for every contender of this workload, in display order."""
    if isinstance(workload, InferenceWorkload):  # predict on one row and on many, beside PyTorch and NumPy
        return _case_table(
            workload,
            {
                "netcore numba": c.netcore_predict_runner("numba"),
                "netcore numpy": c.netcore_predict_runner("numpy"),
                "pytorch": c.torch_predict_runner,
                "plain numpy": c.plain_predict_runner,
                "gemm at workload shapes": c.gemm_at_shapes_runner,
            },
        )
    if getattr(workload, "cell", None):  # W6: every recurrent cell, each beside PyTorch's
        return _case_table(
            workload,
            {
                "netcore numba": c.netcore_runner("numba"),
                "netcore numpy": c.netcore_runner("numpy"),
                "pytorch": c.torch_runner(),
                "gemm at workload shapes": c.gemm_at_shapes_runner,
            },
        )
    if workload.device == "cpu":
        return {
            "netcore numba": c.netcore_runner("numba"),
            "netcore numpy": c.netcore_runner("numpy"),
            "pytorch": c.torch_runner(),
            "plain numpy": c.plain_array_runner("numpy"),
            "scikit-learn": c.sklearn_runner,
            "gemm at workload shapes": c.gemm_at_shapes_runner,
        }
    return {
        "netcore cupy": c.netcore_runner("cupy"),
        "netcore cupy graph": c.netcore_runner("cupy", graph=True),
        "netcore cupy graph tf32": c.netcore_runner("cupy", graph=True, tf32=True),
        "netcore cupy fit": c.netcore_runner("cupy", fit=True),
        "netcore cupy fit graph": c.netcore_runner("cupy", graph=True, fit=True),
        "pytorch eager": c.torch_runner(),
        "pytorch cuda graph": c.torch_runner(graph=True),
        "pytorch eager tf32": c.torch_runner(tf32=True),
        "plain cupy": c.plain_array_runner("cupy"),
        "gemm at workload shapes": c.gemm_at_shapes_runner,
    }


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import cupy

        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:  # no GPU or no cupy: the report simply has no gpu entry
        pass
    return info


def measure(workload: Workload, names: list[str] | None = None, repeats: int = 3, log=print) -> dict:
    """Time every contender ``repeats`` times, interleaved; return the report (also what ``--json`` writes)."""
    try:
        c.array_module(workload)
    except c.Skip as exc:
        raise BackendUnavailableError(f"{workload.name} runs on a CUDA GPU and none is usable here: {exc}") from None
    threads = c.os_threads()
    table = contender_table(workload)
    unknown = sorted(set(names or ()) - set(table))
    if unknown:
        choices = ", ".join(table)
        raise ConfigurationError(f"no contender {', '.join(unknown)} in {workload.name}; choose from: {choices}")
    selected = {k: v for k, v in table.items() if names is None or k in names}
    runs, notes = {}, {}
    for name, setup in selected.items():
        try:
            runs[name] = setup(workload, threads)
        except c.Skip as exc:
            notes[name] = str(exc)
            log(f"  skipped {name}: {exc}")
    per_step = getattr(workload, "per_step", False)

    def scenario(name: str):
        """The workload as contender ``name`` runs it (its case, where the workload has several)."""
        case = _case(name)
        return workload.with_case(case) if case else workload

    def per_unit(name: str) -> int:
        """Timed units (GPU steps, optimizer steps, calls) in one run of contender ``name``."""
        return c.GPU_BLOCK if workload.device == "gpu" else scenario(name).steps if per_step else 1

    times: dict[str, list[float]] = {name: [] for name in runs}
    rates = []
    order = list(runs)
    for repeat in range(repeats):
        rates.append(c.square_gemm_rate(workload))
        # Each repetition starts one contender later, so none is always the one after the big square GEMMs.
        shift = repeat % max(len(order), 1)
        for name in order[shift:] + order[:shift]:
            run = runs[name]
            time.sleep(PAUSE)
            started = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - started) / per_unit(name))
    rate = statistics.median(rates)

    def floor_of(name: str) -> float:
        """The GEMM floor of the workload (of the contender's case: W6's cell, the inference batch), per timed
        unit."""
        chosen = scenario(name)
        return chosen.flops() / rate / (chosen.steps if per_step else 1)

    rows = []
    for name, samples in times.items():
        median, best = statistics.median(samples), min(samples)
        reference, best_reference = _pytorch_reference(name, times), _pytorch_reference(name, times, min)
        shape_times = times.get(_matching("gemm at workload shapes", name))
        shapes, best_shapes = (statistics.median(shape_times), min(shape_times)) if shape_times else (None, None)
        by_hand = times.get(_matching("plain numpy", name))
        rows.append(
            {
                "name": name,
                "median_s": median,
                "min_s": best,
                "samples_s": samples,
                "vs_pytorch": median / reference if reference else None,
                "vs_floor": median / floor_of(name),
                "vs_gemm_at_shapes": median / shapes if shapes else None,
                "best_vs_pytorch": best / best_reference if best_reference else None,
                "best_vs_gemm_at_shapes": best / best_shapes if best_shapes else None,
                "vs_plain_numpy": median / statistics.median(by_hand) if by_hand else None,
            }
        )
    own = f" {workload.case}" if getattr(workload, "case", None) else ""
    shape_times = times.get(f"gemm at workload shapes{own}")
    shapes, best_shapes = (statistics.median(shape_times), min(shape_times)) if shape_times else (None, None)
    return {
        "workload": workload.name,
        "sizes": list(workload.sizes),
        "batch": workload.batch,
        "rows": workload.rows,
        "unit": "call" if workload.unit == "call" else "step" if per_step else workload.unit,
        "threads": threads,
        "repeats": repeats,
        "machine": machine(),
        "sgemm_flops": rate,
        "gemm_floor_s": floor_of(workload.name + own),
        "gemm_at_shapes_s": shapes,
        "gemm_at_shapes_best_s": best_shapes,
        "gemm_at_shapes_flops": workload.flops() / shapes / (workload.steps if per_step else 1) if shapes else None,
        "results": rows,
        "skipped": notes,
    }


def _case(name: str) -> str | None:
    """The case a contender runs (its name's last word: a W6 cell, an inference batch), else None."""
    last = name.rsplit(" ", 1)[-1]
    return last if last in CASES else None


def _matching(base: str, name: str) -> str:
    """``base``'s row for the same case as contender ``name``, else ``base``."""
    case = _case(name)
    return f"{base} {case}" if case else base


def _pytorch_reference(name: str, times: dict[str, list[float]], statistic=statistics.median) -> float | None:
    """PyTorch's time (median, or ``statistic`` of its runs) in the same precision as contender ``name`` (TF32 rows
    against PyTorch's TF32), and in the same case (W6's cell, the inference batch)."""
    candidates = ["pytorch eager tf32"] if "tf32" in name else ["pytorch", "pytorch eager"]
    for candidate in candidates:
        candidate = _matching(candidate, name)
        if candidate in times:
            return statistic(times[candidate])
    return None


#: How each timed unit is printed: (label in tables, label on plots, scale from seconds).
UNITS = {
    "step": ("ms/step", "ms per step", 1e3),
    "call": ("us/call", "microseconds per call", 1e6),
    "epoch": ("s/epoch", "seconds per epoch", 1.0),
}


def format_table(report: dict) -> str:
    unit, _, scale = UNITS[report["unit"]]
    width = max(26, *(len(name) for name in [*(row["name"] for row in report["results"]), *report["skipped"]]))
    lines = [
        f"{report['workload']} {'-'.join(map(str, report['sizes']))}, batch {report['batch']}"
        + (f", {report['rows']} rows" if report["unit"] == "epoch" else "")
        + f"; {report['machine'].get('processor', '')}"
        + f"; {report['threads']} BLAS threads; median of {report['repeats']}",
        f"sgemm {report['sgemm_flops'] / 1e9:.1f} GFLOP/s; GEMM floor {report['gemm_floor_s'] * scale:.3f} {unit}"
        + (
            f"; GEMMs at the workload's shapes {report['gemm_at_shapes_s'] * scale:.3f} {unit} "
            f"({report['gemm_at_shapes_flops'] / 1e9:.1f} GFLOP/s)"
            if report["gemm_at_shapes_s"]
            else ""
        ),
        f"{'contender':{width}} {unit:>10} {'x pytorch':>10} {'x floor':>9} {'x gemm@shapes':>14}"
        f"   best: {'x pytorch':>9} {'x gemm@shapes':>14}   {'x plain numpy':>13}",
    ]
    for row in report["results"]:
        fmt = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
        lines.append(
            f"{row['name']:{width}} {row['median_s'] * scale:10.3f} {fmt(row['vs_pytorch']):>10} "
            f"{row['vs_floor']:9.2f} {fmt(row['vs_gemm_at_shapes']):>14}"
            f"         {fmt(row['best_vs_pytorch']):>9} {fmt(row['best_vs_gemm_at_shapes']):>14}"
            f"   {fmt(row.get('vs_plain_numpy')):>13}"
        )
    for name, why in report["skipped"].items():
        lines.append(f"{name:{width}} skipped: {why}")
    return "\n".join(lines)


def plot_bars(report: dict, path: str) -> None:
    """Medians as bars, the spread of each contender's runs as whiskers (fastest to slowest)."""
    plt = load_pyplot()
    _, unit, scale = UNITS[report["unit"]]
    rows = report["results"]
    names = [row["name"] for row in rows] + ["GEMM floor"]
    values = [row["median_s"] * scale for row in rows] + [report["gemm_floor_s"] * scale]
    below = [(row["median_s"] - min(row["samples_s"])) * scale for row in rows] + [0.0]
    above = [(max(row["samples_s"]) - row["median_s"]) * scale for row in rows] + [0.0]
    colours = [
        "tab:blue" if n.startswith("netcore") else "tab:orange" if n.startswith("pytorch") else "tab:gray"
        for n in names
    ]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    ax.barh(names[::-1], values[::-1], color=colours[::-1], xerr=[below[::-1], above[::-1]], capsize=3)
    for y, (v, extra) in enumerate(zip(values[::-1], above[::-1], strict=True)):
        ax.text(v + extra, y, f" {v:.3g}", va="center")
    ax.set_xlim(0, max(v + extra for v, extra in zip(values, above, strict=True)) * 1.12)
    ax.set_xlabel(f"{unit} (median of {report['repeats']}; whiskers: fastest to slowest run)")
    ax.set_title(f"{report['workload']} ({report['machine'].get('processor', '')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sweep(workload: Workload, repeats: int, names: list[str] | None = None, log=print) -> list[dict]:
    """Cost against work: batch sizes and widths around the workload, side by side (``names``, or netcore and
    PyTorch in float32), with the GEMMs at each point's shapes."""
    if not workload.is_mlp or isinstance(workload, InferenceWorkload):
        raise ConfigurationError(f"--sweep varies an MLP's training; {workload.name} is not one")
    points = []
    hidden = workload.sizes[1:-1]
    variants = [(b, hidden) for b in sorted({32, 64, 128, 256, 512, workload.batch})] + [
        (workload.batch, tuple(max(1, h * f // 4) for h in hidden)) for f in (1, 2, 8)
    ]
    if names is None:
        names = [n for n in contender_table(workload) if n.startswith(("netcore", "pytorch")) and "tf32" not in n]
    names = [n for n in names if n != "gemm at workload shapes"]
    rows = min(workload.rows, 20_000) if workload.unit == "epoch" else None
    for batch, widths in variants:
        scaled = workload.scaled(rows=rows, batch=batch, hidden=widths)
        log(f"  sweep: batch {batch}, hidden {widths}")
        report = measure(scaled, names + ["gemm at workload shapes"], repeats, log=lambda *_: None)
        points.append(
            {
                "batch": batch,
                "hidden": list(widths),
                "gflop": scaled.flops() / 1e9,
                "results": {r["name"]: r["median_s"] for r in report["results"]},
            }
        )
    return points


def plot_sweep(points: list[dict], path: str, unit: str, batch: int) -> None:
    """Two panels: cost against batch size at the workload's widths, and cost against work as the widths grow (at
    the workload's batch size ``batch``)."""
    from matplotlib import ticker

    plt = load_pyplot()
    widths = points[0]["hidden"]
    panels = [
        ("batch size", [p for p in points if p["hidden"] == widths], "batch"),
        (
            f"GFLOP of matrix products per {unit} (hidden widths scaled)",
            [p for p in points if p["batch"] == batch],
            "gflop",
        ),
    ]
    plain = ticker.FuncFormatter(lambda value, _: f"{value:.3g}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (label, chosen, key) in zip(axes, panels, strict=True):
        chosen = sorted(chosen, key=lambda p: p[key])
        xs = [p[key] for p in chosen]
        for name in chosen[0]["results"]:
            ax.loglog(xs, [p["results"][name] for p in chosen], "o-", label=name)
        ax.set_xticks(xs)  # the measured points, labelled plainly (log axes otherwise crowd their minor labels)
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel(f"seconds per {unit}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--workload", default="W1", choices=sorted(WORKLOADS))
    parser.add_argument("--rows", type=_positive_int, default=None, help="rows per epoch (W1, W4, W7)")
    parser.add_argument("--repeats", type=_positive_int, default=5, help="timed runs of each contender (median)")
    parser.add_argument("--only", default=None, help="comma-separated contender names")
    parser.add_argument("--json", dest="json_path", default=None, help="write the report as JSON here")
    parser.add_argument("--plot", dest="plot_path", default=None, help="write a PNG bar chart here")
    parser.add_argument("--sweep", action="store_true", help="also vary batch size and width; plot cost vs work")
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=None,
        help="instead: the throughput of this many data-parallel processes (mpiexec) against one, one thread each",
    )
    parser.add_argument("--device", default="numba", help="the device of the --processes measurement")
    return parser


def run(args) -> int:
    workload = WORKLOADS[args.workload]
    if args.rows:
        workload = workload.scaled(rows=args.rows)
    if args.processes:
        from benchmarks.scaling import format_scaling, measure_scaling

        report = measure_scaling(
            workload, args.processes, args.repeats, args.device, log=lambda m: print(m, file=sys.stderr)
        )
        print(format_scaling(report))
        if args.json_path:
            with open(args.json_path, "w") as handle:
                json.dump(report, handle, indent=2)
        return 0
    names = [n.strip() for n in args.only.split(",")] if args.only else None
    report = measure(workload, names, args.repeats, log=lambda msg: print(msg, file=sys.stderr))
    print(format_table(report))
    if args.sweep:
        report["sweep"] = sweep(workload, args.repeats, names, log=lambda msg: print(msg, file=sys.stderr))
        path = (args.plot_path or f"{workload.name}.png").removesuffix(".png") + "-sweep.png"
        plot_sweep(report["sweep"], path, workload.unit, workload.batch)
        print(f"sweep plot written to {path}")
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(report, handle, indent=2)
    if args.plot_path:
        plot_bars(report, args.plot_path)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(build_parser().parse_args(argv))
    except NetcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
