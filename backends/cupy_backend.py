"""The CuPy backend: arrays on a CUDA GPU, with fused element-wise and row kernels.

Each override carries the name of the base method whose array expression it implements. Everything not overridden
runs the base class's expressions on CuPy arrays. Random draws stay on the host's generator (so a seed gives the
same weights as on the CPU) except dropout masks and Gaussian noise, which are drawn on the device from a seed the
host generator supplies: deterministic for a seed, but not the CPU backends' draws.
"""

from __future__ import annotations

import functools

import numpy as np

from backends._cupy_image_kernels import CupyImageKernels
from backends._cupy_recurrent_kernels import CupyRecurrentKernels
from backends.base import Backend

# Device helpers the activation kernels share (ActivationKernels._sigmoid and the GELU-tanh derivative).
_ACTIVATION_PREAMBLE = r"""
template <typename T> __device__ T netcore_sigmoid(T x) {
    T e = exp(-fabs(x));
    return x >= 0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e);
}
template <typename T> __device__ T netcore_gelu_tanh_slope(T z) {
    T s = netcore_sigmoid((T)1.5957691216057308 * (z + (T)0.044715 * z * z * z));
    return s + (T)2 * z * s * ((T)1 - s) * (T)0.7978845608028654 * ((T)1 + (T)0.134145 * z * z);
}
"""
# CUDA bodies of ActivationKernels._<kind>_forward: `t` is the pre-activation, `alpha` the parameter.
_FORWARD = {
    "linear": "t",
    "relu": "t <= 0 ? (T)0 : t",  # NaN stays NaN, as np.maximum and PyTorch's relu keep it
    "leaky_relu": "t > 0 ? t : alpha * t",
    "elu": "t > 0 ? t : (T)(alpha * expm1(t))",
    "sigmoid": "netcore_sigmoid(t)",
    "tanh": "tanh(t)",
    "softplus": "max(t, (T)0) + log1p(exp(-fabs(t)))",
    "gelu": "(T)0.5 * t * erfc(t * (T)-0.7071067811865476)",
    "gelu_tanh": "t * netcore_sigmoid((T)1.5957691216057308 * (t + (T)0.044715 * t * t * t))",
}
# CUDA bodies of ActivationKernels._<kind>_backward: the derivative times dy, from `y` (and `z` for the GELUs).
_BACKWARD = {
    "linear": "dy",
    "relu": "y > 0 ? dy : (T)0",
    "leaky_relu": "y > 0 ? dy : alpha * dy",
    "elu": "y > 0 ? dy : dy * (y + alpha)",
    "sigmoid": "dy * y * ((T)1 - y)",
    "tanh": "dy * ((T)1 - y * y)",
    "softplus": "-dy * expm1(-y)",
    "gelu": "dy * ((T)0.5 * erfc(z * (T)-0.7071067811865476) + z * exp((T)-0.5 * z * z) * (T)0.3989422804014327)",
    "gelu_tanh": "dy * netcore_gelu_tanh_slope(z)",
}

# Uniform draws computed from (seed, element index) alone: SplitMix64's output for counter i + 1, so one kernel
# fills any array with no generator state to allocate or initialise (cuRAND's per-thread states cost both).
_RANDOM_PREAMBLE = r"""
__device__ unsigned long long netcore_splitmix64(unsigned long long seed, unsigned long long i) {
    unsigned long long z = seed + (i + 1ULL) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
template <typename T> __device__ T netcore_uniform(unsigned long long seed, unsigned long long i) {
    unsigned long long bits = netcore_splitmix64(seed, i);  // the top 24 (float) or 53 (double) bits, exactly
    return sizeof(T) == 4 ? (T)((double)(bits >> 40) * 5.9604644775390625e-08)
                          : (T)((double)(bits >> 11) * 1.1102230246251565e-16);
}
"""

_SOFTMAX_CE_SOURCE = r"""
template <typename T>
__global__ void softmax_ce(const T* z, const long long* y, T* grad, T* loss_rows, const T* w, int has_w,
                           double scale, double smoothing, int n, int c) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T* zi = z + (long long)i * c;
    T* gi = grad + (long long)i * c;
    double mx = zi[0], s = 0, sum_z = 0;
    for (int j = 1; j < c; ++j) mx = max(mx, (double)zi[j]);
    for (int j = 0; j < c; ++j) { double e = exp((double)zi[j] - mx); gi[j] = (T)e; s += e; sum_z += zi[j]; }
    double lse = log(s) + mx, wi = scale * (has_w ? (double)w[i] : 1.0);
    for (int j = 0; j < c; ++j) gi[j] = (T)(wi * ((double)gi[j] / s - smoothing / c));
    gi[y[i]] -= (T)(wi * (1.0 - smoothing));
    loss_rows[i] = (T)(wi * ((1.0 - smoothing) * (lse - zi[y[i]]) + smoothing * (lse - sum_z / c)));
}
"""

# LayerKernels.batchnorm_forward_train and batchnorm_backward: one thread per column walks its rows (neighbouring
# threads read neighbouring addresses) in the dtype of the arrays, as the NumPy reference does; dx may alias dy
# (each thread reads its own column before writing it).
_BATCHNORM_SOURCE = r"""
template <typename T>
__global__ void batchnorm_train(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var, T* out,
                                T* xhat, T* inv_std, T eps, T new_weight, T var_scale, int n, int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    T keep = (T)1 - new_weight, sum = 0, squares = 0;
    for (int i = 0; i < n; ++i) sum += x[(long long)i * c + j];
    T mean = sum / (T)n;
    running_mean[j] = keep * running_mean[j] + new_weight * mean;
    for (int i = 0; i < n; ++i) {
        long long k = (long long)i * c + j;
        T d = x[k] - mean;
        xhat[k] = d;
        squares += d * d;
    }
    T var = squares / (T)n;
    running_var[j] = keep * running_var[j] + new_weight * var_scale * var;
    T inv = (T)1 / sqrt(var + eps);
    inv_std[j] = inv;
    for (int i = 0; i < n; ++i) {
        long long k = (long long)i * c + j;
        T h = xhat[k] * inv;
        xhat[k] = h;
        out[k] = gamma[j] * h + beta[j];
    }
}

template <typename T>
__global__ void batchnorm_backward(const T* dy, const T* xhat, const T* inv_std, const T* gamma, T* dx, T* dgamma,
                                   T* dbeta, int need_dx, int n, int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    T sum_dy = 0, sum_dy_xhat = 0;
    for (int i = 0; i < n; ++i) {
        long long k = (long long)i * c + j;
        sum_dy += dy[k];
        sum_dy_xhat += dy[k] * xhat[k];
    }
    dbeta[j] = sum_dy;
    dgamma[j] = sum_dy_xhat;
    if (!need_dx) return;
    T scale = gamma[j] * inv_std[j] / (T)n;
    for (int i = 0; i < n; ++i) {
        long long k = (long long)i * c + j;
        dx[k] = scale * ((T)n * dy[k] - sum_dy - xhat[k] * sum_dy_xhat);
    }
}
"""


class CupyBackend(CupyImageKernels, CupyRecurrentKernels, Backend):
    """GPU backend; ``cupy:N`` selects device N."""

    name = "cupy"
    patch_block_bytes = None
    install_hint = "pip install 'netcore-nn[cuda12]'  (or [cuda13] for CUDA 13)"

    @classmethod
    def unavailable_reason(cls, index: int = 0) -> str | None:
        try:
            import cupy
        except ImportError as exc:
            return f"cupy is not installed ({exc}); install it with: {cls.install_hint}"
        except Exception as exc:  # a broken CUDA install can fail at import time
            return f"cupy failed to import: {type(exc).__name__}: {exc}"
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            return f"no usable CUDA driver or device: {type(exc).__name__}: {exc}".strip()
        if count == 0:
            return "no CUDA device found"
        if index >= count:
            return f"CUDA device {index} requested but only {count} device(s) present"
        return None

    def __init__(self, index: int = 0):
        import cupy

        self.xp = cupy
        self.index = index
        self.device = cupy.cuda.Device(index)
        self.name = "cupy" if index == 0 else f"cupy:{index}"
        self.out_of_memory_errors = (cupy.cuda.memory.OutOfMemoryError,)
        self._spares = {}
        self._ones = {}
        self._counters = {}
        #: True while a step is being recorded into a CUDA graph (values must then come from device memory).
        self.capturing = False

    def scope(self):
        return self.device

    def synchronize(self) -> None:
        self.device.synchronize()

    def memory_info(self) -> tuple[int, int]:
        with self.device:
            free, total = self.xp.cuda.runtime.memGetInfo()
        return total - free, total

    def to_numpy(self, x) -> np.ndarray:
        return self.xp.asnumpy(x)

    def device_of(self, x) -> str | None:
        return None if x.device.id == self.index else f"cupy:{x.device.id}"

    def foreign_device(self, x) -> str | None:
        # Other libraries' CUDA arrays are readable in place on the same GPU; anything else is host data.
        if hasattr(x, "__cuda_array_interface__"):
            pointer = x.__cuda_array_interface__["data"][0]
            attributes = self.xp.cuda.runtime.pointerGetAttributes(pointer)
            return None if attributes.device == self.index else f"CUDA device {attributes.device}"
        return None

    dlpack_device_type = 2  # kDLCUDA

    def row_reader(self):
        from backends._cupy_staging import PinnedRowReader

        return PinnedRowReader(self)

    def device_collectives(self, job):
        from backends._cupy_collectives import nccl_group

        return nccl_group(self, job)

    def _dlpack_device_matches(self, device_id: int) -> bool:
        return device_id == self.index

    def from_foreign(self, x):
        with self.device:
            return self.xp.array(x, copy=True)

    def asarray(self, x, dtype=None):
        with self.device:
            return super().asarray(x, dtype)

    def erfc(self, x):
        from cupyx.scipy.special import erfc

        return erfc(x)

    def random_into(self, rng, out) -> None:
        # Drawn on the device from a seed the host generator supplies, so a model's seed still fixes them.
        self._uniform_kernel(self._draw_seed(rng), out)

    @staticmethod
    def _draw_seed(rng) -> np.uint64:
        return np.uint64(rng.integers(2**64, dtype=np.uint64))

    def _site_seed(self, rng, site):
        """The device-held seed of one drawing site (a dropout mask, a noise buffer): set from the host generator
        on an eager step; while a graph records, advanced on the device instead (one SplitMix64 step), so every
        replay draws anew without the host."""
        seed = self._counter((site.data.ptr, "seed"), np.uint64)
        if self.capturing:
            self._next_seed_kernel(np.uint64(0), seed)
        else:
            seed.fill(self._draw_seed(rng))
        return seed

    @functools.cached_property
    def _gemm(self):
        from backends._cupy_graph import Gemm

        with self.device:
            return Gemm(self.xp)

    def _ones_row(self, n: int, dtype):
        """A cached ``(1, n)`` row of ones: column sums as a matrix product (no reduction kernel, capturable)."""
        key = (n, np.dtype(dtype).str)
        ones = self._ones.get(key)
        if ones is None:
            ones = self._ones[key] = self.xp.ones((1, n), dtype=dtype)
        return ones

    def _counter(self, key, dtype):
        """A one-element device array that holds an optimizer's step number for its kernel."""
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.xp.zeros((1,), dtype=dtype)
        return counter

    def _set_step(self, counter, step: int) -> None:
        # While capturing, a value written from the host would be frozen into the graph: count on the device.
        if self.capturing:
            counter += 1
        else:
            counter.fill(step)

    def accumulate(self, total, value, weight):
        if not self.is_native(value):  # a host number (a distributed step's loss, summed over the ranks)
            return super().accumulate(total, value, weight)
        if not self.is_native(total):
            total = self.xp.zeros((), dtype=value.dtype)
        self._accumulate_kernel(value, value.dtype.type(weight), total)
        return total

    def capture_unsupported(self) -> str | None:
        return None

    def capture(self, step):
        """Run ``step`` once on a side stream (warm-up: kernels compiled, buffers allocated; its errors are the
        caller's), then record it as a CUDA graph; ``(replay, None)``, or ``(None, reason)`` if CUDA refused."""
        stream = self.xp.cuda.Stream(non_blocking=True)
        self.synchronize()  # everything queued so far (weights, inputs) is in place before the side stream starts
        with self.device, stream:
            step()
            stream.synchronize()
            self.capturing = True
            try:
                stream.begin_capture()
                try:
                    step()
                finally:
                    graph = stream.end_capture()
            except Exception as exc:  # CUDA reports an illegal operation during capture in many ways
                return None, f"CUDA graph capture failed: {type(exc).__name__}: {exc}"
            finally:
                self.capturing = False

        before, after = self.xp.cuda.Event(), self.xp.cuda.Event()

        def replay():
            # Order the replay after the current stream's work (new data copied into the inputs) and the current
            # stream's later work after the replay (reading weights): the side stream does not do it by itself.
            current = self.xp.cuda.get_current_stream()
            before.record(current)
            stream.wait_event(before)
            graph.launch(stream=stream)
            after.record(stream)
            current.wait_event(after)

        return replay, None

    def _scratch(self, purpose: str, shape, dtype):
        """A work array for one purpose, allocated once per shape and dtype (so steps allocate nothing)."""
        key = (purpose, tuple(shape), np.dtype(dtype).str)
        array = self._spares.get(key)
        if array is None:
            array = self._spares[key] = self.xp.empty(shape, dtype=dtype)
        return array

    # ----------------------------------------------------------------- kernels, built once per kind
    @functools.cache  # noqa: B019 - backends are process-wide singletons
    def _bias_activation_kernel(self, kind: str, in_place: bool):
        body = "T t = z; if (has_bias) t += b[i % ncol]; z = t; "
        if in_place:
            return self.xp.ElementwiseKernel(
                "raw T b, bool has_bias, int32 ncol, T alpha",
                "T z",
                body + f"z = {_FORWARD[kind]};",
                f"netcore_bias_{kind}_inplace",
                preamble=_ACTIVATION_PREAMBLE,
            )
        return self.xp.ElementwiseKernel(
            "raw T b, bool has_bias, int32 ncol, T alpha",
            "T z, T y",
            body + f"y = {_FORWARD[kind]};",
            f"netcore_bias_{kind}",
            preamble=_ACTIVATION_PREAMBLE,
        )

    @functools.cache  # noqa: B019 - backends are process-wide singletons
    def _activation_forward_kernel(self, kind: str):
        return self.xp.ElementwiseKernel(
            "T t, T alpha", "T y", f"y = {_FORWARD[kind]};", f"netcore_{kind}_forward", preamble=_ACTIVATION_PREAMBLE
        )

    @functools.cache  # noqa: B019 - backends are process-wide singletons
    def _activation_backward_kernel(self, kind: str):
        return self.xp.ElementwiseKernel(
            "T dy, T y, T z, T alpha",
            "T out",
            f"out = {_BACKWARD[kind]};",
            f"netcore_{kind}_backward",
            preamble=_ACTIVATION_PREAMBLE,
        )

    @functools.cached_property
    def _softmax_ce_module(self):
        return self.xp.RawModule(
            code=_SOFTMAX_CE_SOURCE,
            options=("-std=c++14",),
            name_expressions=("softmax_ce<float>", "softmax_ce<double>"),
        )

    @functools.cached_property
    def _batchnorm_module(self):
        return self.xp.RawModule(
            code=_BATCHNORM_SOURCE,
            options=("-std=c++14",),
            name_expressions=tuple(
                f"{kernel}<{t}>" for kernel in ("batchnorm_train", "batchnorm_backward") for t in ("float", "double")
            ),
        )

    @staticmethod
    def _instance(module, kernel: str, dtype):
        """The float or double instantiation of a templated ``__global__`` kernel of ``module``."""
        return module.get_function(f"{kernel}<{'float' if dtype == np.float32 else 'double'}>")

    @staticmethod
    def _launch(kernel, count: int, args, threads: int = 128) -> None:
        """Run ``kernel`` on ``count`` threads (one per row or column), in blocks of ``threads``."""
        kernel(((count + threads - 1) // threads,), (threads,), args)

    @functools.cached_property
    def _batchnorm_eval_kernel(self):
        # LayerKernels.batchnorm_forward_eval
        return self.xp.ElementwiseKernel(
            "T x, raw T gamma, raw T beta, raw T mean, raw T var, T eps, int32 ncol",
            "T out",
            "int j = i % ncol; out = gamma[j] * (x - mean[j]) / sqrt(var[j] + eps) + beta[j];",
            "netcore_batchnorm_eval",
        )

    @functools.cached_property
    def _adam_kernel(self):
        # OptimizerKernels.adam_step
        # The step number comes from device memory so that a captured graph advances it on every replay.
        return self.xp.ElementwiseKernel(
            "T g, T lr, T beta1, T beta2, T eps, T l2, T decay, raw T step, bool amsgrad",
            "T p, T m, T v, T vmax",
            """T t = step[0];
               T step_size = lr / ((T)1 - pow(beta1, t)); T inv_bc2_sqrt = (T)1 / sqrt((T)1 - pow(beta2, t));
               T pi = p * decay; T gi = g + l2 * pi;
               m = beta1 * m + ((T)1 - beta1) * gi; v = beta2 * v + ((T)1 - beta2) * gi * gi;
               T vv = v; if (amsgrad) { vv = max(vmax, v); vmax = vv; }
               p = pi - step_size * m / (sqrt(vv) * inv_bc2_sqrt + eps);""",
            "netcore_adam",
        )

    @functools.cached_property
    def _sgd_kernel(self):
        # OptimizerKernels.sgd_step
        return self.xp.ElementwiseKernel(
            "T g, T lr, T momentum, T dampening, T weight_decay, bool nesterov, bool first_step",
            "T p, T buf",
            """T gi = g + weight_decay * p;
               if (momentum != (T)0) {
                   T b = first_step ? gi : momentum * buf + ((T)1 - dampening) * gi; buf = b;
                   gi = nesterov ? gi + momentum * b : b;
               }
               p -= lr * gi;""",
            "netcore_sgd",
        )

    @functools.cached_property
    def _accumulate_kernel(self):
        # ArrayOps.accumulate, in place on a device scalar
        return self.xp.ElementwiseKernel(
            "T value, T weight", "T total", "total += value * weight", "netcore_accumulate"
        )

    @functools.cached_property
    def _adagrad_kernel(self):
        # OptimizerKernels.adagrad_step
        return self.xp.ElementwiseKernel(
            "T g, T clr, T weight_decay, T eps",
            "T p, T state_sum",
            """T gi = g + weight_decay * p; state_sum += gi * gi; p -= clr * gi / (sqrt(state_sum) + eps);""",
            "netcore_adagrad",
        )

    @functools.cached_property
    def _rmsprop_kernel(self):
        # OptimizerKernels.rmsprop_step
        return self.xp.ElementwiseKernel(
            "T g, T lr, T alpha, T eps, T weight_decay, T momentum, bool centered",
            "T p, T square_avg, T grad_avg, T buf",
            """T gi = g + weight_decay * p;
               T s = alpha * square_avg + ((T)1 - alpha) * gi * gi; square_avg = s;
               if (centered) { T ga = alpha * grad_avg + ((T)1 - alpha) * gi; grad_avg = ga; s = s - ga * ga; }
               T upd = gi / (sqrt(s) + eps);
               if (momentum != (T)0) { upd = momentum * buf + upd; buf = upd; }
               p -= lr * upd;""",
            "netcore_rmsprop",
        )

    @functools.cached_property
    def _adadelta_kernel(self):
        # OptimizerKernels.adadelta_step
        return self.xp.ElementwiseKernel(
            "T g, T lr, T rho, T eps, T weight_decay",
            "T p, T square_avg, T acc_delta",
            """T gi = g + weight_decay * p;
               T s = rho * square_avg + ((T)1 - rho) * gi * gi; square_avg = s;
               T d = sqrt(acc_delta + eps) / sqrt(s + eps) * gi;
               acc_delta = rho * acc_delta + ((T)1 - rho) * d * d;
               p -= lr * d;""",
            "netcore_adadelta",
        )

    @functools.cached_property
    def _nadam_kernel(self):
        # OptimizerKernels.nadam_step
        return self.xp.ElementwiseKernel(
            "T g, T beta1, T beta2, T eps, T l2, T decay, T inv_bc2, T g_coef, T m_coef",
            "T p, T m, T v",
            """T pi = p * decay; T gi = g + l2 * pi;
               m = beta1 * m + ((T)1 - beta1) * gi; v = beta2 * v + ((T)1 - beta2) * gi * gi;
               T denom = sqrt(v * inv_bc2) + eps;
               p = pi - g_coef * gi / denom - m_coef * m / denom;""",
            "netcore_nadam",
        )

    @functools.cached_property
    def _uniform_kernel(self):
        # ArrayOps.random_into
        return self.xp.ElementwiseKernel(
            "uint64 seed", "T out", "out = netcore_uniform<T>(seed, i);", "netcore_uniform", preamble=_RANDOM_PREAMBLE
        )

    @functools.cached_property
    def _next_seed_kernel(self):
        return self.xp.ElementwiseKernel(
            "uint64 lane",
            "uint64 seed",
            "seed = netcore_splitmix64(seed, lane);",
            "netcore_next_seed",
            preamble=_RANDOM_PREAMBLE,
        )

    @functools.cached_property
    def _gaussian_noise_kernel(self):
        # LayerKernels.gaussian_noise, draws included: out = x + stddev * N(0, 1), by Box-Muller in double precision
        return self.xp.ElementwiseKernel(
            "T x, T stddev, raw uint64 seed",
            "T out",
            """double u1 = netcore_uniform<double>(seed[0], 2 * i), u2 = netcore_uniform<double>(seed[0], 2 * i + 1);
               out = x + stddev * (T)(sqrt(-2.0 * log1p(-u1)) * cos(6.283185307179586 * u2));""",
            "netcore_gaussian_noise",
            preamble=_RANDOM_PREAMBLE,
        )

    @functools.cached_property
    def _dropout_kernel(self):
        # LayerKernels.dropout_forward, draws included: mask = (u >= rate) * scale; out = x * mask
        return self.xp.ElementwiseKernel(
            "T x, T rate, T scale, raw uint64 seed",
            "T mask, T out",
            "mask = netcore_uniform<T>(seed[0], i) >= rate ? scale : (T)0; out = x * mask;",
            "netcore_dropout",
            preamble=_RANDOM_PREAMBLE,
        )

    @functools.cached_property
    def _dropout_mask_kernel(self):
        # LayerKernels.dropout_forward's mask alone: mask = (u >= rate) * scale
        return self.xp.ElementwiseKernel(
            "T rate, T scale, raw uint64 seed",
            "T mask",
            "mask = netcore_uniform<T>(seed[0], i) >= rate ? scale : (T)0;",
            "netcore_dropout_mask",
            preamble=_RANDOM_PREAMBLE,
        )

    # ----------------------------------------------------------------- overrides
    def matmul(self, a, b, out=None):
        if out is None or not self._gemm.supports(a, b, out):
            return super().matmul(a, b, out)
        return self._gemm(a, b, out, tf32=self.matmul_precision == "high")

    def column_sum(self, x, out):
        target = out.reshape(1, -1)
        ones = self._ones_row(x.shape[0], x.dtype)
        if x.ndim != 2 or not self._gemm.supports(ones, x, target):
            return super().column_sum(x, out)
        self._gemm(ones, x, target)
        return out

    def bias_activation(self, z, b, kind, alpha, out):
        if kind not in _FORWARD or z.ndim != 2:
            return super().bias_activation(z, b, kind, alpha, out)
        bias = b if b is not None else z
        alpha = z.dtype.type(alpha)
        if out is z:
            self._bias_activation_kernel(kind, True)(bias, b is not None, z.shape[1], alpha, z)
        else:
            self._bias_activation_kernel(kind, False)(bias, b is not None, z.shape[1], alpha, z, out)
        return out

    def activation_forward(self, z, kind, alpha, out):
        if kind not in _FORWARD:
            return super().activation_forward(z, kind, alpha, out)
        self._activation_forward_kernel(kind)(z, z.dtype.type(alpha), out)
        return out

    def activation_backward(self, dy, y, z, kind, alpha, out):
        if kind not in _BACKWARD:
            return super().activation_backward(dy, y, z, kind, alpha, out)
        self._activation_backward_kernel(kind)(dy, y, z if z is not None else y, dy.dtype.type(alpha), out)
        return out

    def softmax_cross_entropy(self, logits, target, grad, scale, weights=None, label_smoothing=0.0):
        if target.ndim != 1 or not logits.flags.c_contiguous or not grad.flags.c_contiguous:
            return super().softmax_cross_entropy(logits, target, grad, scale, weights, label_smoothing)
        n, c = logits.shape
        # Keyed by the gradient buffer, i.e. by model: one model's step does not overwrite another's loss.
        loss_rows = self._scratch(("loss rows", grad.data.ptr), (n, 1), logits.dtype)
        total = self._scratch(("loss", grad.data.ptr), (1, 1), logits.dtype)
        w = weights if weights is not None else logits
        y = target.astype(np.int64, copy=False)
        self._launch(
            self._instance(self._softmax_ce_module, "softmax_ce", logits.dtype),
            n,
            (
                logits,
                y,
                grad,
                loss_rows,
                w,
                np.int32(weights is not None),
                np.float64(scale),
                np.float64(label_smoothing),
                np.int32(n),
                np.int32(c),
            ),
        )
        self._gemm(self._ones_row(n, logits.dtype), loss_rows, total)  # the sum as a product: no reduction kernel
        return total[0, 0]

    def sgd_step(self, p, g, buf, tmp, *, lr, momentum, dampening, weight_decay, nesterov, first_step):
        t = p.dtype.type
        buf = tmp if buf is None else buf  # plain SGD keeps no momentum buffer; the kernel then never writes it
        self._sgd_kernel(g, t(lr), t(momentum), t(dampening), t(weight_decay), nesterov, first_step, p, buf)

    def adagrad_step(self, p, g, state_sum, tmp, *, lr, lr_decay, weight_decay, eps, step):
        t = p.dtype.type
        self._adagrad_kernel(g, t(lr / (1 + (step - 1) * lr_decay)), t(weight_decay), t(eps), p, state_sum)

    def rmsprop_step(self, p, g, square_avg, grad_avg, buf, tmp, *, lr, alpha, eps, weight_decay, momentum, centered):
        t = p.dtype.type
        self._rmsprop_kernel(
            g,
            t(lr),
            t(alpha),
            t(eps),
            t(weight_decay),
            t(momentum),
            centered,
            p,
            square_avg,
            tmp if grad_avg is None else grad_avg,
            tmp if buf is None else buf,
        )

    def adadelta_step(self, p, g, square_avg, acc_delta, tmp, *, lr, rho, eps, weight_decay):
        t = p.dtype.type
        self._adadelta_kernel(g, t(lr), t(rho), t(eps), t(weight_decay), p, square_avg, acc_delta)

    def nadam_step(
        self,
        p,
        g,
        m,
        v,
        tmp,
        *,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled,
        step,
        mu,
        mu_next,
        mu_product,
        mu_product_next,
    ):
        t = p.dtype.type
        decay, l2 = self.weight_decay_terms(lr, weight_decay, decoupled)
        g_coef, m_coef = self.nadam_coefficients(lr, mu, mu_next, mu_product, mu_product_next)
        self._nadam_kernel(
            g, t(beta1), t(beta2), t(eps), t(l2), t(decay), t(1 / (1 - beta2**step)), t(g_coef), t(m_coef), p, m, v
        )

    def dropout_forward(self, x, rate, rng, mask, out):
        t = x.dtype.type
        seed = self._site_seed(rng, mask)
        if mask.shape != x.shape:  # one draw per feature map (spatial dropout), broadcast over the image
            self._dropout_mask_kernel(t(rate), t(1 / (1 - rate)), seed, mask)
            self.xp.multiply(x, mask, out=out)
            return out
        self._dropout_kernel(x, t(rate), t(1 / (1 - rate)), seed, mask, out)
        return out

    def batchnorm_forward_train(
        self, x, gamma, beta, running_mean, running_var, out, xhat, inv_std, *, eps, new_weight, unbiased_running_var
    ):
        arrays = (x, gamma, beta, running_mean, running_var, out, xhat, inv_std)
        if x.ndim != 2 or not all(a.flags.c_contiguous for a in arrays):
            options = dict(eps=eps, new_weight=new_weight, unbiased_running_var=unbiased_running_var)
            return super().batchnorm_forward_train(*arrays, **options)
        n, c = x.shape
        t = x.dtype.type
        var_scale = self.running_variance_scale(n, unbiased_running_var)
        scalars = (t(eps), t(new_weight), t(var_scale), np.int32(n), np.int32(c))
        self._launch(self._instance(self._batchnorm_module, "batchnorm_train", x.dtype), c, (*arrays, *scalars))
        return out

    def batchnorm_backward(self, dy, xhat, inv_std, gamma, dx, dgamma, dbeta):
        arrays = (dy, xhat, inv_std, gamma, dgamma, dbeta) + (() if dx is None else (dx,))
        if dy.ndim != 2 or not all(a.flags.c_contiguous for a in arrays):
            return super().batchnorm_backward(dy, xhat, inv_std, gamma, dx, dgamma, dbeta)
        n, c = dy.shape
        self._launch(
            self._instance(self._batchnorm_module, "batchnorm_backward", dy.dtype),
            c,
            (
                dy,
                xhat,
                inv_std,
                gamma,
                dy if dx is None else dx,
                dgamma,
                dbeta,
                np.int32(dx is not None),
                np.int32(n),
                np.int32(c),
            ),
        )
        return dx

    def batchnorm_forward_eval(self, x, gamma, beta, running_mean, running_var, out, *, eps):
        if x.ndim != 2:
            return super().batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, out, eps=eps)
        self._batchnorm_eval_kernel(x, gamma, beta, running_mean, running_var, x.dtype.type(eps), x.shape[1], out)
        return out

    def gaussian_noise(self, x, stddev, rng, out):
        self._gaussian_noise_kernel(x, x.dtype.type(stddev), self._site_seed(rng, out), out)
        return out

    def adam_step(self, p, g, m, v, vmax, tmp, *, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step):
        t = p.dtype.type
        decay, l2 = self.weight_decay_terms(lr, weight_decay, decoupled)
        counter = self._counter((p.data.ptr, "adam"), p.dtype)
        self._set_step(counter, step)
        args = (t(lr), t(beta1), t(beta2), t(eps), t(l2), t(decay), counter, amsgrad)
        self._adam_kernel(g, *args, p, m, v, vmax if amsgrad else tmp)
