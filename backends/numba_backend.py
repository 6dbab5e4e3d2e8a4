"""The Numba backend: NumPy arrays and BLAS matrix products, with the memory-bound kernels JIT-compiled.

Each kernel here overrides the base method of the same name (whose array expression is the formula it implements)
and fuses what NumPy would do in several passes into one. Per-step scalars are passed as the arrays' dtype
(``c = p.dtype.type``) so float32 kernels stay in float32 lanes. Kernels compile on first use and are cached on disk
(``cache=True``). Each call is serial and vectorised. Dense layers leave the cores to BLAS's threads; layers that
cut their batch into blocks (convolutions, pooling, recurrent layers with enough work per step) run the blocks on
the workers the NumPy backend keeps (:class:`~backends.workers.Workers`, one per usable core), while BLAS stays on
the calling thread (``owning_cores``): two pools side by side, one of them spinning, made steps slower, not faster.
Scratch of these kernels is per thread. No Numba thread pool is started, so PyTorch or OpenMP code in the same
process keeps its cores.
"""

from __future__ import annotations

import math

from backends._numba_recurrent import NumbaRecurrentKernels, load_compiled_blas
from backends._numba_winograd import NumbaWinogradKernels
from backends.numpy_backend import NumpyBackend

_KIND_CODES = {
    "linear": 0,
    "relu": 1,
    "leaky_relu": 2,
    "elu": 3,
    "sigmoid": 4,
    "tanh": 5,
    "softplus": 6,
    "gelu": 7,
    "gelu_tanh": 8,
}
#: Activations whose compiled form loses to NumPy's on large arrays: their ``exp``/``log1p`` are scalar C-library
#: calls in compiled code (no vector math library) but SIMD loops in NumPy, while on a few rows NumPy's several
#: passes cost more than one compiled call. From this many elements on, the NumPy path runs. Measured at 128 x 512
#: in float32: tanh 543 vs 32 us, sigmoid 266 vs 186, softplus 431 vs 130 (its gradient 202 vs 105), GELU's
#: gradient 645 vs 505; at 32 x 1 a sigmoid costs 1.5 us compiled and 8 through NumPy. ``tanh`` keeps the compiled
#: bias add and takes NumPy's ``tanh`` (the base's own expression, so the results are the same bits).
_NUMPY_FORWARD_FROM = {"tanh": 256, "sigmoid": 4096, "softplus": 4096, "gelu_tanh": 4096, "softmax": 4096}
_NUMPY_BACKWARD_FROM = {"softplus": 4096, "gelu": 4096, "gelu_tanh": 4096}
_kernels = None
_image_kernels = None


def _or(buffer, scratch):
    """An unused optional state buffer is passed as the scratch buffer: compiled kernels need an array."""
    return scratch if buffer is None else buffer


def _load_kernels():
    """Import numba and the kernel module once, on first use (``import netcore`` never pays for it)."""
    global _kernels
    if _kernels is None:
        from backends import _numba_kernels

        _kernels = _numba_kernels
    return _kernels


def _load_image_kernels():
    """The image kernels compile on first use of an image layer: dense models never pay for them."""
    global _image_kernels
    if _image_kernels is None:
        from backends import _numba_image_kernels

        _image_kernels = _numba_image_kernels
    return _image_kernels


def _contiguous(*arrays) -> bool:
    return all(a.flags.c_contiguous for a in arrays)


class NumbaBackend(NumbaRecurrentKernels, NumbaWinogradKernels, NumpyBackend):
    """CPU backend with fused, compiled element-wise kernels."""

    name = "numba"
    #: Measured at batch 64 on two cores, with every pass one compiled call that holds no GIL: split in two blocks,
    #: the training steps of LSTM (32 x 512 values a block), GRU (32 x 384) and SimpleRNN (32 x 128) take a third
    #: less time than whole (SimpleRNN 3.1 against 4.8 ms). The NumPy backend's steps, several ufunc calls each,
    #: lose at any size.
    recurrent_block_work = 32 * 128
    install_hint = "pip install numba"
    _reason: str | None = None
    _probed = False

    @classmethod
    def unavailable_reason(cls, index: int = 0) -> str | None:
        if not cls._probed:
            cls._probed, cls._reason = True, cls._probe()
        return cls._reason

    @staticmethod
    def _probe() -> str | None:
        try:
            import numba
        except ImportError as exc:
            return f"numba is not installed ({exc}); install it with: pip install numba"
        try:
            numba.njit(lambda x: x + 1)(1)
        except Exception as exc:  # any failure of the JIT toolchain makes the backend unusable
            return f"numba failed to compile a test kernel: {type(exc).__name__}: {exc}"
        return None

    def __init__(self):
        super().__init__()
        self.k = _load_kernels()

    def limit_threads(self, count: int) -> None:
        import numba

        load_compiled_blas()
        super().limit_threads(count)
        numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))

    def all_finite(self, x) -> bool:
        # Every predict checks its rows: on one row NumPy's min and max cost ten times this call.
        if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8) or not x.flags.c_contiguous:
            return super().all_finite(x)
        return self.k.all_finite(x)

    # ----------------------------------------------------------------- activations
    def bias_activation(self, z, b, kind, alpha, out):
        # Checks written out inline: on one row (predict serving a request) every Python call here costs as much
        # as the compiled kernel.
        code = _KIND_CODES.get(kind)
        if (
            (code is None and kind != "softmax")
            or z.ndim != 2
            or not (z.flags.c_contiguous and out.flags.c_contiguous)
            or (b is not None and z.dtype != b.dtype)
        ):
            return super().bias_activation(z, b, kind, alpha, out)
        simd = z.size >= _NUMPY_FORWARD_FROM.get(kind, z.size + 1)
        if simd and kind != "tanh":
            return super().bias_activation(z, b, kind, alpha, out)
        bias = b if b is not None else z[0, :0]
        if code is None:
            self.k.bias_softmax(z, bias, b is not None, out)
            return out
        fused = _KIND_CODES["linear"] if simd else code
        # The tile: scratch for a bias repeated along a block of narrow rows (see the kernel).
        tile = self._scratch_for("tile", 256, z.dtype)
        self.k.bias_activation(z, bias, b is not None, fused, z.dtype.type(alpha), out, tile)
        if simd:
            self.xp.tanh(out, out=out)
        return out

    def activation_backward(self, dy, y, z, kind, alpha, out):
        if not self._compiled_gradient(dy, None, y, z, kind, alpha, out):
            super().activation_backward(dy, y, z, kind, alpha, out)
        return out

    def rnn_step_backward(self, dh, carry, h, z, kind, alpha, dz):
        # One pass for the sum and the gradient. The base's two (the sum into dz, the gradient over it in place)
        # cost twice as much here: a compiled loop writing over its own input does not vectorise.
        if not self._compiled_gradient(dh, carry, h, z, kind, alpha, dz):
            super().rnn_step_backward(dh, carry, h, z, kind, alpha, dz)
        return dz

    def _compiled_gradient(self, dy, carry, y, z, kind, alpha, out) -> bool:
        """``out = (dy [+ carry]) f'(z)`` by the compiled kernel, if it takes these arrays (else False)."""
        code = _KIND_CODES.get(kind)
        if code is None or dy.ndim != 2 or not _contiguous(dy, y, out) or (z is not None and not _contiguous(z)):
            return False
        if (carry is not None and not carry.flags.c_contiguous) or dy.size >= _NUMPY_BACKWARD_FROM.get(
            kind, dy.size + 1
        ):
            return False
        pre = z if z is not None else y
        # Element-wise: one long row vectorises whatever the layer's width.
        flat = dy.reshape(1, -1)
        incoming = flat[:, :0] if carry is None else carry.reshape(1, -1)
        self.k.activation_backward(
            flat, incoming, y.reshape(1, -1), pre.reshape(1, -1), code, dy.dtype.type(alpha), out.reshape(1, -1)
        )
        return True

    # ----------------------------------------------------------------- products
    def column_sum(self, x, out):
        if x.ndim != 2 or not x.flags.c_contiguous:
            return super().column_sum(x, out)
        self.k.column_sum(x, out, self._scratch_for("tile", 256, x.dtype))
        return out

    def scatter_add_rows(self, src, index, out):
        if not (src.flags.c_contiguous and out.flags.c_contiguous) or src.ndim != 2 or index.dtype.kind not in "iu":
            return super().scatter_add_rows(src, index, out)
        self.k.scatter_add_rows(src, index, out)  # adds in ArrayOps.scatter_add_rows's order
        return out

    def take_rows(self, x, index, out):
        if (
            not (x.flags.c_contiguous and out.flags.c_contiguous)
            or x.dtype != out.dtype
            or index.dtype.kind not in "iu"
            or x.ndim > 2
        ):
            return super().take_rows(x, index, out)
        if x.ndim == 1:  # labels and sample weights: gathered as one-column matrices (views, no copies)
            self.k.take_rows(x.reshape(-1, 1), index, out.reshape(-1, 1))
        else:
            self.k.take_rows(x, index, out)
        return out

    # ----------------------------------------------------------------- losses
    def softmax_cross_entropy(self, logits, target, grad, scale, weights=None, label_smoothing=0.0):
        if target.ndim != 1 or not logits.flags.c_contiguous:
            return super().softmax_cross_entropy(logits, target, grad, scale, weights, label_smoothing)
        w = weights if weights is not None else logits[0, :0]
        return self.k.softmax_cross_entropy(logits, target, grad, float(scale), w, float(label_smoothing))

    # ----------------------------------------------------------------- dropout
    @staticmethod
    def _maps(x, mask):
        """``(x, mask)`` as (images, pixels, channels) and (images, channels) when ``mask`` has one value per feature
        map of the images ``x`` (spatial dropout), else None."""
        if x.ndim != 4 or mask.shape != (x.shape[0], 1, 1, x.shape[3]) or not _contiguous(x, mask):
            return None
        n, channels = x.shape[0], x.shape[3]
        return x.reshape(n, -1, channels), mask.reshape(n, channels)

    def dropout_forward(self, x, rate, rng, mask, out):
        maps = self._maps(x, mask)
        if not (mask.shape == x.shape or maps) or not _contiguous(x, out, mask):
            return super().dropout_forward(x, rate, rng, mask, out)
        self.random_into(rng, mask)
        c = x.dtype.type
        if maps:
            self.k.dropout_maps(*maps, c(rate), c(1 / (1 - rate)), out.reshape(maps[0].shape))
        else:
            self.k.dropout_forward(x.reshape(-1), mask.reshape(-1), c(rate), c(1 / (1 - rate)), out.reshape(-1))
        return out

    def dropout_backward(self, dy, mask, out):
        # NumPy copies an input that broadcasts into an output it overlaps; the kernel works in place.
        maps = self._maps(dy, mask)
        if maps is None or not _contiguous(out):
            return super().dropout_backward(dy, mask, out)
        self.k.scale_maps(*maps, out.reshape(maps[0].shape))
        return out

    # ----------------------------------------------------------------- batch normalisation
    def batchnorm_forward_train(
        self, x, gamma, beta, running_mean, running_var, out, xhat, inv_std, *, eps, new_weight, unbiased_running_var
    ):
        arrays = (x, gamma, beta, running_mean, running_var, out, xhat, inv_std)
        if not all(a.ndim == 2 and a.flags.c_contiguous for a in (x, out, xhat)) or not inv_std.flags.c_contiguous:
            options = dict(eps=eps, new_weight=new_weight, unbiased_running_var=unbiased_running_var)
            return super().batchnorm_forward_train(*arrays, **options)
        var_scale = self.running_variance_scale(x.shape[0], unbiased_running_var)
        c = x.dtype.type
        self.k.batchnorm_forward_train(*arrays, c(eps), c(new_weight), c(var_scale))
        return out

    def batchnorm_backward(self, dy, xhat, inv_std, gamma, dx, dgamma, dbeta):
        if not (dy.flags.c_contiguous and xhat.flags.c_contiguous) or (dx is not None and not dx.flags.c_contiguous):
            return super().batchnorm_backward(dy, xhat, inv_std, gamma, dx, dgamma, dbeta)
        self.k.batchnorm_backward(dy, xhat, inv_std, gamma, dy if dx is None else dx, dgamma, dbeta, dx is not None)
        return dx

    # ----------------------------------------------------------------- images
    def _channels_first(self, x):
        """``x`` (N, H, W, C) as a channels-first array for the patch kernels: a view for one channel, else a
        scratch buffer kept per shape."""
        n, h, w, c = x.shape
        if c == 1:
            return x.reshape(1, n, h, w)
        return self._scratch_for("channels first", (c, n, h, w), x.dtype)

    def im2col(self, x, window, cols):
        if not _contiguous(x, cols) or x.dtype != cols.dtype:
            return super().im2col(x, window, cols)
        _load_image_kernels().im2col(x, cols, self._channels_first(x), *window.geometry)
        return cols

    def im2col_by_pixels(self, x, window, cols):
        if not _contiguous(x, cols) or x.dtype != cols.dtype:
            return super().im2col_by_pixels(x, window, cols)
        _load_image_kernels().im2col_by_pixels(x, cols, *window.geometry)
        return cols

    def col2im(self, cols, window, dx):
        if not _contiguous(cols, dx) or cols.dtype != dx.dtype:
            return super().col2im(cols, window, dx)
        _load_image_kernels().col2im(cols, dx, self._channels_first(dx), *window.geometry)
        return dx

    def conv_input_gradient_scratch(self, pixels, window, channels):
        # Pixel by pixel where a window row is a vector's worth of values (its additions vectorise): LeNet's second
        # convolution (5 x 6) 729 -> 334 us a block of 32 images against the col2im path; W7's step 241 -> 229 ms
        # against window positions from 32 channels on.
        if self.patches_by_pixel(window, channels):
            return (pixels, window.size * channels)
        return super().conv_input_gradient_scratch(pixels, window, channels)

    def fold_pixel_patches(self, d, window, dx):
        if not _contiguous(d, dx) or d.dtype != dx.dtype:
            return super().fold_pixel_patches(d, window, dx)
        _load_image_kernels().fold_pixel_patches(d, dx, *window.geometry)
        return dx

    def max_pool_forward(self, x, window, out, argmax):
        if not self._compiled_max_pool(x, None, False, window, out, argmax):
            super().max_pool_forward(x, window, out, argmax)
        return out

    #: One compiled pass over a convolution's output instead of two each way, measured per block of 32 images: LeNet's
    #: first pooling (6 channels, 2x2) forward 209 -> 150 us with the bias and ReLU, backward 149 -> 102; W7's
    #: first (32 channels) 926 -> 265 and 1141 -> 761.
    fuses_bias_relu_into_max_pool = True

    def max_pool_bias_relu_forward(self, z, bias, relu, window, out, argmax):
        if not self._compiled_max_pool(z, bias, relu, window, out, argmax):
            super().max_pool_bias_relu_forward(z, bias, relu, window, out, argmax)
        return out

    def _compiled_max_pool(self, x, bias, relu, window, out, argmax) -> bool:
        """The compiled max-pooling of ``x`` (plus ``bias``, through ReLU where ``relu``), if it takes these arrays."""
        if not _contiguous(x, out, argmax) or x.dtype != out.dtype or (bias is not None and bias.dtype != x.dtype):
            return False
        bias = self._scratch_for("no bias", (0,), x.dtype) if bias is None else bias
        _load_image_kernels().max_pool_forward(x, out, argmax, bias, relu, *window.pool_geometry)
        return True

    def max_pool_backward(self, dy, argmax, window, dx):
        if not self._compiled_unpool(dy, argmax, None, False, window, dx):
            super().max_pool_backward(dy, argmax, window, dx)
        return dx

    def max_pool_relu_backward(self, dy, argmax, out, relu, window, dx):
        if not self._compiled_unpool(dy, argmax, out, relu, window, dx):
            super().max_pool_relu_backward(dy, argmax, out, relu, window, dx)
        return dx

    def _compiled_unpool(self, dy, argmax, out, relu, window, dx) -> bool:
        """The compiled max-pooling gradient (times 0 where ``relu`` and ``out`` is not positive), if it takes these
        arrays."""
        out = dy if out is None else out
        if not _contiguous(dy, argmax, dx, out) or not dy.dtype == dx.dtype == out.dtype:
            return False
        _load_image_kernels().max_pool_backward(dy, argmax, dx, out, relu, *window.pool_geometry)
        return True

    def avg_pool_forward(self, x, window, out):
        if not _contiguous(x, out) or x.dtype != out.dtype:
            return super().avg_pool_forward(x, window, out)
        _load_image_kernels().avg_pool_forward(x, out, *window.pool_geometry)
        return out

    def avg_pool_backward(self, dy, window, dx):
        if not _contiguous(dy, dx) or dy.dtype != dx.dtype:
            return super().avg_pool_backward(dy, window, dx)
        _load_image_kernels().avg_pool_backward(dy, dx, *window.pool_geometry)
        return dx

    def affine_sample(self, x, matrices, out, fill_mode, fill_value, interpolation):
        if not _contiguous(x, matrices, out) or not x.dtype == matrices.dtype == out.dtype:
            return super().affine_sample(x, matrices, out, fill_mode, fill_value, interpolation)
        mode = ("reflect", "wrap", "nearest", "constant").index(fill_mode)
        fill = x.dtype.type(fill_value)
        _load_image_kernels().affine_sample(x, matrices, out, mode, fill, interpolation == "nearest")
        return out

    # ----------------------------------------------------------------- optimizers (flat buffers)
    def sgd_step(self, p, g, buf, tmp, *, lr, momentum, dampening, weight_decay, nesterov, first_step):
        c = p.dtype.type
        self.k.sgd_step(p, g, _or(buf, tmp), c(lr), c(momentum), c(dampening), c(weight_decay), nesterov, first_step)

    def adam_step(self, p, g, m, v, vmax, tmp, *, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step):
        step_size = lr / (1 - beta1**step)
        inv_bc2_sqrt = 1 / math.sqrt(1 - beta2**step)
        decay, l2 = self.weight_decay_terms(lr, weight_decay, decoupled)
        c = p.dtype.type
        self.k.adam_step(
            p,
            g,
            m,
            v,
            _or(vmax, tmp),
            c(beta1),
            c(beta2),
            c(eps),
            c(l2),
            c(decay),
            c(step_size),
            c(inv_bc2_sqrt),
            amsgrad,
        )

    def adagrad_step(self, p, g, state_sum, tmp, *, lr, lr_decay, weight_decay, eps, step):
        clr = lr / (1 + (step - 1) * lr_decay)
        c = p.dtype.type
        self.k.adagrad_step(p, g, state_sum, c(clr), c(weight_decay), c(eps))

    def rmsprop_step(self, p, g, square_avg, grad_avg, buf, tmp, *, lr, alpha, eps, weight_decay, momentum, centered):
        c = p.dtype.type
        self.k.rmsprop_step(
            p,
            g,
            square_avg,
            _or(grad_avg, tmp),
            _or(buf, tmp),
            c(lr),
            c(alpha),
            c(eps),
            c(weight_decay),
            c(momentum),
            centered,
        )

    def adadelta_step(self, p, g, square_avg, acc_delta, tmp, *, lr, rho, eps, weight_decay):
        c = p.dtype.type
        self.k.adadelta_step(p, g, square_avg, acc_delta, c(lr), c(rho), c(eps), c(weight_decay))

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
        decay, l2 = self.weight_decay_terms(lr, weight_decay, decoupled)
        g_coef, m_coef = self.nadam_coefficients(lr, mu, mu_next, mu_product, mu_product_next)
        c = p.dtype.type
        self.k.nadam_step(
            p, g, m, v, c(beta1), c(beta2), c(eps), c(l2), c(decay), c(1 / (1 - beta2**step)), c(g_coef), c(m_coef)
        )
