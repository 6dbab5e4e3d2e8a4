"""Pictures of training (host side, matplotlib): loss and metric curves, and decision boundaries of 2-D problems.

matplotlib is the optional extra ``plot``: ``pip install 'netcore-nn[plot]'``.
"""

from __future__ import annotations

import numpy as np

from netcore.errors import NetcoreError


class PlotError(NetcoreError, RuntimeError):
    """Plotting is impossible here (matplotlib missing) or the data cannot be drawn."""


def load_pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("plotting needs matplotlib; install the extra: pip install 'netcore-nn[plot]'") from None
    return plt


def history(history, path=None, title: str | None = None):
    """Loss and every metric per epoch, training against validation; saved as PNG when ``path`` is given."""
    plt = load_pyplot()
    logs = history.history if hasattr(history, "history") else dict(history)
    names = [k for k in logs if not k.startswith("val_") and k not in ("lr", "epoch_time")]
    if not names:
        raise PlotError("the history has no epochs to plot")
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], "o-", ms=3, label="train")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], "s-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(plt, fig, path)


def decision_boundary(model, X, y, path=None, resolution: int = 200, title: str | None = None):
    """The model's predicted class over the plane of 2-D data, with the points coloured by their label."""
    plt = load_pyplot()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise PlotError(f"decision_boundary draws 2-D data; X has shape {X.shape}")
    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, resolution)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    classes = model.predict_classes(grid).reshape(grid_x.shape)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.contourf(grid_x, grid_y, classes, alpha=0.3, cmap="coolwarm", levels=np.arange(classes.max() + 2) - 0.5)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=18)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _finish(plt, fig, path)


def _finish(plt, fig, path):
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
