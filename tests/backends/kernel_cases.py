"""One runnable case per backend kernel, shared by the parity and fallback tests.

A case is ``case(backend, rng, n, c, dtype, contiguous) -> list of NumPy arrays``: it builds the same inputs on
any backend (from one NumPy generator), runs the kernel, and returns everything the kernel wrote or returned. With
``contiguous=False`` the 2-D inputs are strided views of larger arrays.
"""

from __future__ import annotations

import numpy as np

from backends.activation_kernels import KINDS

DIFFERENTIABLE = [k for k in KINDS if k != "step"]


def put(backend, host, contiguous=True):
    """``host`` on the backend; as a strided view (every other column of a wider array) when not contiguous."""
    host = np.asarray(host)
    if contiguous or host.ndim != 2:
        return backend.asarray(host)
    wide = np.zeros((host.shape[0], 2 * host.shape[1]), dtype=host.dtype)
    wide[:, ::2] = host
    return backend.asarray(wide)[:, ::2]


def get(backend, *arrays):
    return [np.asarray(backend.to_numpy(a), dtype=np.float64) for a in arrays]


def _activation_input(rng, n, c, dtype, kind):
    z = rng.standard_normal((n, c)) * 3
    if kind in ("relu", "leaky_relu", "elu", "step"):
        z = np.where(np.abs(z) < 1e-3, 0.5, z)  # away from the kink
    return z.astype(dtype)


def bias_activation(kind):
    def case(backend, rng, n, c, dtype, contiguous):
        z = put(backend, _activation_input(rng, n, c, dtype, kind), contiguous)
        b = backend.asarray(rng.standard_normal(c).astype(dtype))
        out = backend.empty((n, c), z.dtype)
        backend.bias_activation(z, b, kind, 0.1, out)
        return get(backend, z, out)

    return case


def bias_activation_wide(backend, rng, n, c, dtype, contiguous):
    """Rows wider than the numba kernel's bias tile (taken one at a time) and just narrower (several at a time)."""
    outputs = []
    for width in (300, 127, 129):
        outputs += bias_activation("relu")(backend, rng, n, width, dtype, contiguous)
    return outputs


def bias_activation_in_place(kind):
    def case(backend, rng, n, c, dtype, contiguous):
        z = put(backend, _activation_input(rng, n, c, dtype, kind), contiguous)
        backend.bias_activation(z, None, kind, 0.2, z)
        return get(backend, z)

    return case


def activation_backward(kind):
    def case(backend, rng, n, c, dtype, contiguous):
        zh = _activation_input(rng, n, c, dtype, kind)
        y = backend.empty((n, c), backend.float_dtype(dtype))
        z = put(backend, zh, contiguous)
        backend.activation_forward(z, kind, 0.1, y)
        dy = put(backend, rng.standard_normal((n, c)).astype(dtype), contiguous)
        out = backend.empty((n, c), y.dtype)
        backend.activation_backward(dy, y, z, kind, 0.1, out)
        return get(backend, y, out)

    return case


def large(case):
    """``case`` on a few thousand elements per array: where the numba backend hands the transcendental
    activations to NumPy's SIMD loops."""
    return lambda backend, rng, n, c, dtype, contiguous: case(backend, rng, n, 800, dtype, contiguous)


def column_sum(backend, rng, n, c, dtype, contiguous):
    x = put(backend, rng.standard_normal((n, c)).astype(dtype), contiguous)
    out = backend.empty((c,), x.dtype)
    backend.column_sum(x, out)
    return get(backend, out)


def all_finite(backend, rng, n, c, dtype, contiguous):
    """Clean data, one NaN or infinity anywhere (first, middle, last), and finite values whose sum overflows."""
    host = rng.standard_normal((n, c)).astype(dtype)
    verdicts = [backend.all_finite(put(backend, host, contiguous))]
    for bad in (np.nan, np.inf, -np.inf):
        for position in (0, host.size // 2, host.size - 1):
            spoiled = host.copy()
            spoiled.flat[position] = bad
            verdicts.append(backend.all_finite(put(backend, spoiled, contiguous)))
    huge = np.full((n, c), np.finfo(dtype).max / 2, dtype=dtype)
    verdicts.append(backend.all_finite(put(backend, huge, contiguous)))
    return [np.array(verdicts, dtype=np.float64)]


def matmul(backend, rng, n, c, dtype, contiguous):
    a = put(backend, rng.standard_normal((n, c)).astype(dtype), contiguous)
    b = backend.asarray(rng.standard_normal((c, 5)).astype(dtype))
    out = backend.empty((n, 5), a.dtype)
    backend.matmul(a, b, out=out)
    gram = backend.matmul(a.T, out, out=backend.empty((c, 5), a.dtype))  # a small output of a long inner product
    into_view = backend.matmul(b.T, a.T, out=backend.empty((n, 5), a.dtype).T)  # an output that is not C-ordered
    return get(backend, out, gram, into_view)


def map_blocks(backend, rng, n, c, dtype, contiguous):
    """Each row a block: its own product, bias and ReLU, into its own rows of the outputs, and its lane recorded."""
    a = put(backend, rng.standard_normal((n, c)).astype(dtype), contiguous)
    w = backend.asarray(rng.standard_normal((c, 4)).astype(dtype))
    b = backend.asarray(rng.standard_normal(4).astype(dtype))
    z, y = backend.empty((n, 4), a.dtype), backend.empty((n, 4), a.dtype)
    lanes = np.full(n, -1.0)

    def block(lane, index):
        rows = slice(index, index + 1)
        backend.matmul(a[rows], w, out=z[rows])
        backend.bias_activation(z[rows], b, "relu", 0.0, y[rows])
        lanes[index] = lane

    backend.map_blocks(block, n)
    assert set(lanes) <= set(range(backend.block_threads))  # every block ran, on a lane of the backend's
    return get(backend, z, y)


def accumulate(backend, rng, n, c, dtype, contiguous):
    losses = rng.random(n).astype(dtype)
    total = 0.0
    for value in losses:
        total = backend.accumulate(total, backend.asarray(value), 3)
    return [np.array(backend.to_float(total))]


def take_rows(backend, rng, n, c, dtype, contiguous):
    x = backend.asarray(rng.standard_normal((n + 3, c)).astype(dtype))
    index = backend.asarray(rng.permutation(n + 3)[:n])
    out = backend.empty((n, c), x.dtype)
    backend.take_rows(x, index, out)
    return get(backend, out)


def scatter_add_rows(backend, rng, n, c, dtype, contiguous):
    """Repeated indices add, in order; rows no index names stay zero."""
    src = put(backend, rng.standard_normal((n, c)).astype(dtype), contiguous)
    index = backend.asarray(rng.integers(0, max(1, n // 3), n))
    out = backend.empty((max(1, n // 3) + 2, c), backend.float_dtype(dtype))
    backend.scatter_add_rows(src, index, out)
    return get(backend, out)


def take_rows_1d(backend, rng, n, c, dtype, contiguous):
    y = backend.asarray(rng.integers(0, 10, n + 3))
    index = backend.asarray(rng.permutation(n + 3)[:n])
    out = backend.empty((n,), y.dtype)
    backend.take_rows(y, index, out)
    return get(backend, out)


def loss_case(kernel, targets, weights=False, **options):
    def case(backend, rng, n, c, dtype, contiguous):
        if kernel in ("binary_cross_entropy", "categorical_cross_entropy", "kl_divergence"):
            logits = rng.standard_normal((n, c))
            pred = (
                np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
                if kernel != "binary_cross_entropy"
                else (1 / (1 + np.exp(-logits)))
            )
        else:
            pred = rng.standard_normal((n, c)) * 3
        if targets == "index":
            target = backend.asarray(rng.integers(0, c, n))
        elif targets == "onehot":
            target = backend.asarray(np.eye(c, dtype=dtype)[rng.integers(0, c, n)])
        elif targets == "sign":
            target = backend.asarray(rng.choice([-1.0, 1.0], (n, c)).astype(dtype))
        elif targets == "distribution":
            t = rng.random((n, c)) + 0.1
            target = backend.asarray((t / t.sum(1, keepdims=True)).astype(dtype))
        else:
            target = backend.asarray(
                rng.random((n, c)).astype(dtype) if targets == "unit" else rng.standard_normal((n, c)).astype(dtype)
            )
        w = backend.asarray(rng.random(n).astype(dtype) + 0.5) if weights else None
        p = put(backend, pred.astype(dtype), contiguous)
        grad = backend.empty((n, c), p.dtype)
        loss = getattr(backend, kernel)(p, target, grad, 1.0 / n, w, **options)
        return get(backend, grad) + [np.array(backend.to_float(loss))]

    return case


def dropout_forward(backend, rng, n, c, dtype, contiguous):
    x = put(backend, rng.standard_normal((n, c)).astype(dtype), contiguous)
    mask = backend.empty((n, c), x.dtype)
    out = backend.empty((n, c), x.dtype)
    backend.dropout_forward(x, 0.3, backend.rng(int(rng.integers(1000))), mask, out)
    dx = backend.dropout_backward(out, mask, backend.empty((n, c), x.dtype))
    return get(backend, mask, out, dx)


def gaussian_noise(backend, rng, n, c, dtype, contiguous):
    x = put(backend, rng.standard_normal((n, c)).astype(dtype), contiguous)
    out = backend.empty((n, c), x.dtype)
    backend.gaussian_noise(x, 0.5, backend.rng(3), out)
    return get(backend, out)


def random_into(backend, rng, n, c, dtype, contiguous):
    out = backend.empty((n, c), backend.float_dtype(dtype))
    backend.random_into(backend.rng(int(rng.integers(1000))), out)
    return get(backend, out)


def batchnorm(backend, rng, n, c, dtype, contiguous):
    n = max(n, 2)
    # Rows at least one apart in every column: two nearly equal values make a column's variance vanish, and then
    # float32 sums taken in another order differ by far more than a rounding in xhat and dx (a property search
    # found n=2, seed 10, c=10: a variance of 1e-4 and a 3e-4 relative difference).
    spread = np.arange(n)[:, None] * rng.choice([-1.0, 1.0], c)
    x = put(backend, (rng.standard_normal((n, c)) * 0.4 + 1.5 * spread + 1).astype(dtype), contiguous)
    gamma = backend.asarray(rng.random(c).astype(dtype) + 0.5)
    beta = backend.asarray(rng.standard_normal(c).astype(dtype))
    rmean = backend.asarray(np.zeros(c, dtype))
    rvar = backend.asarray(np.ones(c, dtype))
    out, xhat = backend.empty((n, c), x.dtype), backend.empty((n, c), x.dtype)
    inv_std = backend.empty((c,), x.dtype)
    backend.batchnorm_forward_train(
        x, gamma, beta, rmean, rvar, out, xhat, inv_std, eps=1e-5, new_weight=0.1, unbiased_running_var=True
    )
    dy = backend.asarray(rng.standard_normal((n, c)).astype(dtype))
    dx, dgamma, dbeta = backend.empty((n, c), x.dtype), backend.empty((c,), x.dtype), backend.empty((c,), x.dtype)
    backend.batchnorm_backward(dy, xhat, inv_std, gamma, dx, dgamma, dbeta)
    evaluated = backend.batchnorm_forward_eval(x, gamma, beta, rmean, rvar, backend.empty((n, c), x.dtype), eps=1e-5)
    return get(backend, out, xhat, inv_std, rmean, rvar, dx, dgamma, dbeta, evaluated)


def batchnorm_no_dx(backend, rng, n, c, dtype, contiguous):
    n = max(n, 2)
    dy, xhat = (backend.asarray(rng.standard_normal((n, c)).astype(dtype)) for _ in range(2))
    inv_std, gamma = (backend.asarray(rng.random(c).astype(dtype) + 0.5) for _ in range(2))
    dgamma, dbeta = backend.empty((c,), dy.dtype), backend.empty((c,), dy.dtype)
    assert backend.batchnorm_backward(dy, xhat, inv_std, gamma, None, dgamma, dbeta) is None
    return get(backend, dgamma, dbeta)


def penalties(backend, rng, n, c, dtype, contiguous):
    w = backend.asarray((rng.standard_normal((n, c)) * 4).astype(dtype))
    g = backend.asarray(rng.standard_normal((n, c)).astype(dtype))
    backend.add_penalty_gradient(w, g, 0.01, 0.02)
    backend.clip_column_norms(w, 1.5)
    return get(backend, w, g)


#: Window geometries of the image kernels: (kernel, strides, dilation, padding).
WINDOWS = {
    "3x3 same": ((3, 3), (1, 1), (1, 1), "same"),
    "5x5 same": ((5, 5), (1, 1), (1, 1), "same"),
    "2x3 stride 2 same": ((2, 3), (2, 2), (1, 1), "same"),
    "2x2 dilated valid": ((2, 2), (1, 2), (2, 1), "valid"),
    "pool 2x2": ((2, 2), (2, 2), (1, 1), "valid"),
    "pool 2x2 same": ((2, 2), (2, 2), (1, 1), "same"),  # odd sizes: windows past the bottom and right edges
    "pool 3x3 stride 2 same": ((3, 3), (2, 2), (1, 1), "same"),
}
POOL_WINDOWS = [name for name, (_, _, dilation, _) in WINDOWS.items() if dilation == (1, 1)]


def _image(backend, rng, n, c, dtype, contiguous, ties=False):
    """A batch of ``n`` images of ``c`` channels and a few odd sizes; every other channel of a wider array when not
    contiguous; small integers (many equal neighbours) with ``ties``."""
    shape = (n, 4 + n % 4, 5 + c % 3, c)
    host = rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)
    host = host.astype(dtype)
    if contiguous:
        return backend.asarray(host)
    wide = np.zeros((*shape[:3], 2 * c), dtype)
    wide[..., ::2] = host
    return backend.asarray(wide)[..., ::2]


def _window(x, name):
    from backends.image_kernels import Window

    kernel, strides, dilation, padding = WINDOWS[name]
    return Window.of(x.shape[1:3], kernel, strides, dilation, padding)


def im2col_case(name):
    def case(backend, rng, n, c, dtype, contiguous):
        x = _image(backend, rng, n, c, dtype, contiguous)
        w = _window(x, name)
        cols = backend.empty((w.kh, w.kw, c, n, w.out_h, w.out_w), x.dtype)
        backend.im2col(x, w, cols)
        dcols = backend.asarray(rng.standard_normal(cols.shape).astype(dtype))
        dx = backend.empty(x.shape, x.dtype)
        backend.col2im(dcols, w, dx)
        return get(backend, cols, dx)

    return case


def im2col_by_pixels_case(name):
    """The patches pixel by pixel, and (returned with them) as im2col's patch-major matrix transposed: the same."""

    def case(backend, rng, n, c, dtype, contiguous):
        x = _image(backend, rng, n, c, dtype, contiguous)
        w = _window(x, name)
        cols = backend.empty((n, w.out_h, w.out_w, w.kh, w.kw, c), x.dtype)
        backend.im2col_by_pixels(x, w, cols)
        major = backend.empty((w.kh, w.kw, c, n, w.out_h, w.out_w), x.dtype)
        backend.im2col(x, w, major)
        return get(backend, cols.reshape(-1, w.kh * w.kw * c), major.reshape(w.kh * w.kw * c, -1).T)

    return case


def conv_input_gradient_case(name, by_pixels=False):
    """The input gradient by window positions (or, ``by_pixels``, by the patches' gradient stored pixel by pixel and
    folded back), and the same by the patch-major gradient and col2im (they must agree)."""

    def case(backend, rng, n, c, dtype, contiguous):
        x = _image(backend, rng, n, c, dtype, contiguous)
        w = _window(x, name)
        filters = 3
        kernel = backend.asarray(rng.standard_normal((w.kh, w.kw, c, filters)).astype(dtype))
        dz = backend.asarray(rng.standard_normal((n * w.out_h * w.out_w, filters)).astype(dtype))
        dx = backend.empty(x.shape, x.dtype)
        scratch = backend.empty((dz.shape[0], w.size * c if by_pixels else c), x.dtype)
        backend.conv_input_gradient(dz, kernel, w, dx, scratch)
        dcols = backend.empty((w.kh * w.kw * c, dz.shape[0]), x.dtype)
        backend.matmul(kernel.reshape(-1, filters), dz.T, out=dcols)
        folded = backend.empty(x.shape, x.dtype)
        backend.col2im(dcols.reshape(w.kh, w.kw, c, n, w.out_h, w.out_w), w, folded)
        return get(backend, dx, folded)

    return case


def _tile_planes(backend, count, width, dtype):
    """A tile array as a convolution keeps it: its 16 matrices one row further apart than they hold."""
    return backend.empty((16, count + 1, width), dtype)[:, :count]


def winograd_case(padding):
    """A 3x3 convolution at stride 1 by F(2x2, 3x3) forwards, its kernel gradient and its input gradient, through
    every Winograd kernel, with the patches' results beside them (they must agree to rounding)."""

    def case(backend, rng, n, c, dtype, contiguous):
        from backends.image_kernels import Window

        x = _image(backend, rng, n, c, dtype, contiguous)
        w = Window.of(x.shape[1:3], (3, 3), padding=padding)
        filters = 5
        kernel = backend.asarray(rng.standard_normal((3, 3, c, filters)).astype(dtype))
        dz = backend.asarray(rng.standard_normal((n, w.out_h, w.out_w, filters)).astype(dtype))
        u = backend.winograd_kernel(kernel, backend.empty((16, c, filters), x.dtype))
        tiles = _tile_planes(backend, backend.winograd_tile_count(n, w.out_h, w.out_w), c, x.dtype)
        backend.winograd_input(x, w.pad_top, w.pad_left, w.out_h, w.out_w, tiles)
        z = backend.winograd_output(backend.matmul(tiles, u), backend.empty(dz.shape, x.dtype))
        grad_tiles = _tile_planes(backend, tiles.shape[1], filters, x.dtype)
        backend.winograd_output_gradient(dz, grad_tiles)
        m = backend.matmul(tiles.transpose(0, 2, 1), grad_tiles)
        dkernel = backend.winograd_kernel_gradient(m, backend.empty(kernel.shape, x.dtype))
        flipped = backend.winograd_kernel(
            kernel[::-1, ::-1].transpose(0, 1, 3, 2), backend.empty((16, filters, c), x.dtype)
        )
        input_tiles = _tile_planes(backend, backend.winograd_tile_count(n, *x.shape[1:3]), filters, x.dtype)
        backend.winograd_input(dz, 2 - w.pad_top, 2 - w.pad_left, *x.shape[1:3], input_tiles)
        dx = backend.winograd_output(backend.matmul(input_tiles, flipped), backend.empty(x.shape, x.dtype))
        cols = backend.empty((n, w.out_h, w.out_w, 3, 3, c), x.dtype)
        backend.im2col_by_pixels(x, w, cols)
        patches = cols.reshape(-1, 9 * c)
        by_patches = backend.matmul(patches, kernel.reshape(-1, filters))
        dkernel_by_patches = backend.matmul(patches.T, dz.reshape(-1, filters))
        dx_by_patches = backend.fold_pixel_patches(
            backend.matmul(dz.reshape(-1, filters), kernel.reshape(-1, filters).T).reshape(cols.shape),
            w,
            backend.empty(x.shape, x.dtype),
        )
        results = get(backend, z, dkernel, dx)
        for mine, theirs in zip(results, get(backend, by_patches, dkernel_by_patches, dx_by_patches), strict=True):
            scale = 1e-5 if dtype == "float32" else 1e-13
            np.testing.assert_allclose(mine.reshape(theirs.shape), theirs, atol=scale * (1 + np.abs(theirs).max()))
        return results

    return case


def pool_case(name, kind, ties=False):
    def case(backend, rng, n, c, dtype, contiguous):
        x = _image(backend, rng, n, c, dtype, contiguous, ties)
        w = _window(x, name)
        out = backend.empty((n, w.out_h, w.out_w, c), x.dtype)
        dy = backend.asarray(rng.standard_normal(out.shape).astype(dtype))
        dx = backend.empty(x.shape, x.dtype)
        if kind == "max":
            argmax = backend.empty(out.shape, "int32")
            backend.max_pool_forward(x, w, out, argmax)
            backend.max_pool_backward(dy, argmax, w, dx)
            return get(backend, out, argmax, dx)
        backend.avg_pool_forward(x, w, out)
        backend.avg_pool_backward(dy, w, dx)
        return get(backend, out, dx)

    return case


def pool_bias_relu_case(name, relu=True, bias=True, ties=False):
    """max_pool_bias_relu_forward and its gradient: a convolution's bias and ReLU applied by the pooling."""

    def case(backend, rng, n, c, dtype, contiguous):
        z = _image(backend, rng, n, c, dtype, contiguous, ties)
        w = _window(z, name)
        b = backend.asarray(rng.integers(-2, 1, c).astype(dtype)) if bias else None  # ties: z + b hits 0 often
        out = backend.empty((n, w.out_h, w.out_w, c), z.dtype)
        argmax = backend.empty(out.shape, "int32")
        dy = backend.asarray(rng.standard_normal(out.shape).astype(dtype))
        dz = backend.empty(z.shape, z.dtype)
        backend.max_pool_bias_relu_forward(z, b, relu, w, out, argmax)
        backend.max_pool_relu_backward(dy, argmax, out, relu, w, dz)
        return get(backend, out, argmax, dz)

    return case


def wide_channels(case):
    """``case`` on images of 16 more channels: the numba max-pool takes another loop from 16 on."""

    def wide(backend, rng, n, c, dtype, contiguous):
        return case(backend, rng, n, c + 16, dtype, contiguous)

    return wide


AFFINE = {
    "rotate": (-0.3, 0.3),
    "zoom": ((-0.4, 0.5), None),
    "translate": ((-0.3, 0.3), (-0.6, 0.6)),
    "flip": (True, True),
}


def affine_case(kind, fill_mode, interpolation):
    def case(backend, rng, n, c, dtype, contiguous):
        x = _image(backend, rng, n, c, dtype, contiguous)
        height, width = x.shape[1:3]
        matrices = backend.random_affine(np.random.default_rng(int(rng.integers(1000))), n, height, width, kind,
                                         AFFINE[kind], x.dtype)  # fmt: skip
        out = backend.empty(x.shape, x.dtype)
        backend.affine_sample(x, matrices, out, fill_mode, 0.25, interpolation)
        return get(backend, matrices, out)

    return case


def _step_inputs(backend, rng, n, c, blocks, dtype):
    """A step's projections ``(n, blocks * c)`` and states ``(n, c)`` (``c`` units), of modest size."""
    wide = [backend.asarray(rng.standard_normal((n, blocks * c)).astype(dtype)) for _ in range(2)]
    narrow = [backend.asarray((0.8 * rng.standard_normal((n, c))).astype(dtype)) for _ in range(4)]
    return wide, narrow


def lstm_case(backend, rng, n, c, dtype, contiguous):
    (xw, hu), (c_prev, dh, carry, dc) = _step_inputs(backend, rng, n, c, 4, dtype)
    gates, dz = (backend.empty((n, 4 * c), xw.dtype) for _ in range(2))
    cell, h, dc_prev = (backend.empty((n, c), xw.dtype) for _ in range(3))
    backend.lstm_step(xw, hu, c_prev, gates, cell, h)
    backend.lstm_step_backward(dh, carry, dc, c_prev, gates, cell, dz, dc_prev)
    return get(backend, gates, cell, h, dz, dc_prev)


def gru_case(backend, rng, n, c, dtype, contiguous):
    (xw, hu), (h_prev, dh, carry, _) = _step_inputs(backend, rng, n, c, 3, dtype)
    gates, dzx, dzh = (backend.empty((n, 3 * c), xw.dtype) for _ in range(3))
    h, direct = (backend.empty((n, c), xw.dtype) for _ in range(2))
    backend.gru_step(xw, hu, h_prev, gates, h)
    backend.gru_step_backward(dh, carry, h_prev, gates, hu, dzx, dzh, direct)
    return get(backend, gates, h, dzx, dzh, direct)


def rnn_case(kind):
    def case(backend, rng, n, c, dtype, contiguous):
        (xw, hu), (dh, carry, _, _) = _step_inputs(backend, rng, n, c, 1, dtype)
        h, dz = (backend.empty((n, c), xw.dtype) for _ in range(2))
        backend.rnn_step(xw, hu, kind, 0.1, h)
        backend.rnn_step_backward(dh, carry, h, hu, kind, 0.1, dz)
        return get(backend, hu, h, dz)

    return case


def pass_case(cell: str, kind: str = "tanh", masked: bool = False, bias: bool = True, steps: int = 6, gain=1.0):
    """A whole pass over ``steps`` steps, forward then backward, of ``cell`` (rnn, lstm, gru): the states, the gates
    and the pre-activations' gradients; with ``masked``, some rows of some steps are padding; with ``bias``, the
    input projections' bias (and GRU's recurrent one). ``gain`` scales the recurrent kernel (1: about unit gain)."""
    blocks = {"rnn": 1, "lstm": 4, "gru": 3}[cell]

    def case(backend, rng, n, c, dtype, contiguous):
        width = blocks * c
        xw = backend.asarray(rng.standard_normal((steps, n, width)).astype(dtype))
        u = backend.asarray((gain * rng.standard_normal((c, width)) / np.sqrt(c)).astype(dtype))
        dh = backend.asarray(rng.standard_normal((steps, n, c)).astype(dtype))
        mask = backend.asarray(rng.random((steps, n)) < 0.3) if masked else None
        b = backend.asarray(rng.standard_normal(width).astype(dtype)) if bias else None
        h = backend.asarray(np.zeros((steps + 1, n, c), dtype))
        scratch = tuple(backend.empty((n, c), xw.dtype) for _ in range(4))
        grads = [backend.empty(xw.shape, xw.dtype) for _ in range(2)]
        if cell == "rnn":
            z = backend.empty(xw.shape, xw.dtype)
            backend.rnn_forward(xw, b, u, h, z, kind, 0.1, mask)
            backend.rnn_backward(dh, u, h, z, grads[0], kind, 0.1, scratch[:2], mask)
            return get(backend, h, z, grads[0])
        gates = backend.empty(xw.shape, xw.dtype)
        if cell == "lstm":
            cells = backend.asarray(np.zeros(h.shape, dtype))
            backend.lstm_forward(xw, b, u, h, cells, gates, backend.empty((n, width), xw.dtype), mask)
            backend.lstm_backward(dh, u, cells, gates, grads[0], scratch, mask)
            return get(backend, h, cells, gates, grads[0])
        hu = backend.empty(xw.shape, xw.dtype)
        b_u = backend.asarray(rng.standard_normal(width).astype(dtype)) if bias else None
        backend.gru_forward(xw, b, u, b_u, h, hu, gates, mask)
        backend.gru_backward(dh, u, h, gates, hu, *grads, scratch[:3], mask)
        return get(backend, h, hu, gates, *grads)

    return case


PASS_CASES = {
    "rnn_pass[tanh]": pass_case("rnn"),
    "rnn_pass[relu]": pass_case("rnn", "relu"),
    "rnn_pass[tanh, no bias]": pass_case("rnn", bias=False),
    "rnn_pass[tanh, masked]": pass_case("rnn", masked=True),
    "lstm_pass": pass_case("lstm"),
    "lstm_pass[masked]": pass_case("lstm", masked=True),
    "lstm_pass[no bias]": pass_case("lstm", bias=False),
    "gru_pass": pass_case("gru"),
    "gru_pass[no bias]": pass_case("gru", bias=False),
    "gru_pass[masked]": pass_case("gru", masked=True),
}


def spatial_dropout(backend, rng, n, c, dtype, contiguous):
    """Dropout with one draw per feature map, broadcast over the image."""
    x = _image(backend, rng, n, c, dtype, contiguous)
    mask = backend.empty((n, 1, 1, c), x.dtype)
    out = backend.empty(x.shape, x.dtype)
    backend.dropout_forward(x, 0.3, backend.rng(int(rng.integers(1000))), mask, out)
    dx = backend.dropout_backward(out, mask, backend.empty(x.shape, x.dtype))
    return get(backend, mask, out, dx)


OPTIMIZER_OPTIONS = {
    "sgd_step": [
        dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
        dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False),
        dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True),
    ],
    "adam_step": [
        dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False),
        dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1, decoupled=False, amsgrad=True),
        dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=True, amsgrad=False),
    ],
    "adagrad_step": [dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, eps=1e-10)],
    "rmsprop_step": [
        dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False),
        dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.01, momentum=0.9, centered=True),
    ],
    "adadelta_step": [dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.01)],
    "nadam_step": [
        dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False),
        dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=True),
    ],
}
STATE_BUFFERS = {
    "sgd_step": 1,
    "adam_step": 3,
    "adagrad_step": 1,
    "rmsprop_step": 3,
    "adadelta_step": 2,
    "nadam_step": 2,
}


def optimizer_case(kernel, options):
    def case(backend, rng, n, c, dtype, contiguous):
        size = n * c
        p = backend.asarray(rng.standard_normal(size).astype(dtype))
        states = [backend.asarray(np.zeros(size, dtype)) for _ in range(STATE_BUFFERS[kernel])]
        tmp = backend.empty((size,), p.dtype)
        mu_product = 1.0
        for step in range(1, 4):
            g = backend.asarray(rng.standard_normal(size).astype(dtype))
            extra = {}
            if kernel in ("adam_step", "adagrad_step", "nadam_step"):
                extra["step"] = step
            if kernel == "sgd_step":
                extra["first_step"] = step == 1
            if kernel == "nadam_step":
                mu, mu_next = 0.9 * (1 - 0.5 * 0.96 ** (step * 4e-3)), 0.9 * (1 - 0.5 * 0.96 ** ((step + 1) * 4e-3))
                mu_product *= mu
                extra.update(mu=mu, mu_next=mu_next, mu_product=mu_product, mu_product_next=mu_product * mu_next)
            getattr(backend, kernel)(p, g, *states, tmp, **options, **extra)
        return get(backend, p, *states)

    return case


def merge_case(kind, broadcast=False, ties=False):
    """Three inputs merged (two for a difference) and every input's gradient; ``broadcast`` gives the second input
    a size-1 axis; ``ties`` makes inputs equal in places (the first of them takes a maximum's gradient)."""

    def case(backend, rng, n, c, dtype, contiguous):
        count = 2 if kind == "subtract" else 3
        hosts = [rng.standard_normal((n, c)).astype(dtype) for _ in range(count)]
        if broadcast:
            hosts[1] = hosts[1][:, :1].copy()
        if ties:
            hosts[1][::2] = hosts[0][::2]
        xs = [put(backend, h, contiguous and h.shape[1] > 1) for h in hosts]
        out = backend.empty((n, c), backend.float_dtype(dtype))
        backend.merge_forward(kind, xs, out)
        dy = backend.asarray(rng.standard_normal((n, c)).astype(dtype))
        dxs = [backend.empty(h.shape, out.dtype) for h in hosts]
        scratch = backend.empty((n, c), out.dtype)
        hit, taken = backend.empty((n, c), "bool"), backend.empty((n, c), "bool")
        backend.merge_backward(kind, dy, xs, out, dxs, scratch, hit, taken)
        return get(backend, out, *dxs)

    return case


def concatenate_case(backend, rng, n, c, dtype, contiguous):
    hosts = [rng.standard_normal((n, width)).astype(dtype) for width in (c, 1, 3)]
    xs = [put(backend, h, contiguous) for h in hosts]
    out = backend.empty((n, c + 4), backend.float_dtype(dtype))
    backend.concatenate_forward(xs, 1, out)
    dy = backend.asarray(rng.standard_normal((n, c + 4)).astype(dtype))
    dxs = [backend.empty(h.shape, out.dtype) for h in hosts]
    backend.concatenate_backward(dy, [c, 1, 3], 1, dxs)
    return get(backend, out, *dxs)


def mask_and_case(backend, rng, n, c, dtype, contiguous):
    masks = [backend.asarray(rng.random((n, c)) < 0.7) for _ in range(3)]
    out = backend.empty((n, c), "bool")
    backend.mask_and(masks, out)
    return get(backend, out)


def depthwise_case(backend, rng, n, c, dtype, contiguous):
    """Patches (k, channels, pixels) against per-channel filters (k, channels, m), forward and both gradients."""
    k, channels, m = 4, max(1, c // 4), 3
    cols = backend.asarray(rng.standard_normal((k, channels, n)).astype(dtype))
    kernel = backend.asarray(rng.standard_normal((k, channels, m)).astype(dtype))
    z = backend.empty((n, channels * m), cols.dtype)
    scratch = backend.empty((channels, n, m), cols.dtype)
    backend.depthwise_forward(cols, kernel, z, scratch)
    dz = backend.asarray(rng.standard_normal((n, channels * m)).astype(dtype))
    dkernel, dcols = backend.empty(kernel.shape, cols.dtype), backend.empty(cols.shape, cols.dtype)
    backend.depthwise_backward(cols, kernel, dz, dkernel, dcols, scratch)
    return get(backend, z, dkernel, dcols)


def keras_relu_case(max_value, slope, threshold):
    def case(backend, rng, n, c, dtype, contiguous):
        host = rng.standard_normal((n, c)).astype(dtype)
        host[np.abs(host - threshold) < 1e-3] = threshold + 0.5  # away from the kinks
        x = put(backend, host, contiguous)
        out, scratch, dx = (backend.empty((n, c), backend.float_dtype(dtype)) for _ in range(3))
        backend.relu_forward(x, max_value, slope, threshold, out, scratch)
        dy = backend.asarray(rng.standard_normal((n, c)).astype(dtype))
        backend.relu_backward(dy, x, max_value, slope, threshold, dx)
        return get(backend, out, dx)

    return case


MERGES = ("add", "subtract", "multiply", "average", "maximum", "minimum")

CASES = {
    **{f"merge[{kind}]": merge_case(kind) for kind in MERGES},
    **{f"merge[{kind}, broadcast]": merge_case(kind, broadcast=True) for kind in MERGES},
    "merge[maximum, ties]": merge_case("maximum", ties=True),
    "merge[minimum, ties]": merge_case("minimum", ties=True),
    "concatenate": concatenate_case,
    "depthwise": depthwise_case,
    "relu[6]": keras_relu_case(6.0, 0.0, 0.0),
    "relu[0.5, slope 0.2, threshold -0.3]": keras_relu_case(0.5, 0.2, -0.3),
    "mask_and": mask_and_case,
    **{f"bias_activation[{k}]": bias_activation(k) for k in KINDS},
    **{f"bias_activation_in_place[{k}]": bias_activation_in_place(k) for k in KINDS},
    "bias_activation[wide rows]": bias_activation_wide,
    **{f"bias_activation[{k}, large]": large(bias_activation(k)) for k in KINDS},
    **{f"activation_backward[{k}]": activation_backward(k) for k in DIFFERENTIABLE},
    **{f"activation_backward[{k}, large]": large(activation_backward(k)) for k in DIFFERENTIABLE},
    "column_sum": column_sum,
    "all_finite": all_finite,
    "matmul": matmul,
    "map_blocks": map_blocks,
    "accumulate": accumulate,
    "take_rows": take_rows,
    "take_rows[1d]": take_rows_1d,
    "scatter_add_rows": scatter_add_rows,
    "softmax_cross_entropy[index]": loss_case("softmax_cross_entropy", "index"),
    "softmax_cross_entropy[index,weights,smoothing]": loss_case(
        "softmax_cross_entropy", "index", weights=True, label_smoothing=0.1
    ),
    "softmax_cross_entropy[onehot,smoothing]": loss_case("softmax_cross_entropy", "onehot", label_smoothing=0.2),
    "sigmoid_cross_entropy": loss_case("sigmoid_cross_entropy", "unit"),
    "sigmoid_cross_entropy[pos_weight,weights]": loss_case(
        "sigmoid_cross_entropy", "unit", pos_weight=2.5, weights=True
    ),
    "binary_cross_entropy": loss_case("binary_cross_entropy", "unit"),
    "categorical_cross_entropy[index]": loss_case("categorical_cross_entropy", "index"),
    "categorical_cross_entropy[onehot,smoothing]": loss_case(
        "categorical_cross_entropy", "onehot", label_smoothing=0.1
    ),
    "kl_divergence": loss_case("kl_divergence", "distribution"),
    "mean_squared_error[weights]": loss_case("mean_squared_error", "real", weights=True),
    "mean_absolute_error": loss_case("mean_absolute_error", "real"),
    "huber": loss_case("huber", "real", delta=1.5),
    "poisson_nll": loss_case("poisson_nll", "unit"),
    "poisson_nll[rates,weights]": loss_case("poisson_nll", "unit", weights=True, log_input=False),
    "hinge": loss_case("hinge", "sign"),
    "multiclass_hinge": loss_case("multiclass_hinge", "index"),
    "dropout_forward": dropout_forward,
    "gaussian_noise": gaussian_noise,
    "random_into": random_into,
    "batchnorm": batchnorm,
    "batchnorm[no dx]": batchnorm_no_dx,
    "penalties": penalties,
    "dropout_forward[spatial]": spatial_dropout,
    "lstm_step": lstm_case,
    "gru_step": gru_case,
    **{f"rnn_step[{kind}]": rnn_case(kind) for kind in ("tanh", "relu", "gelu")},
    **PASS_CASES,
    **{f"im2col[{w}]": im2col_case(w) for w in WINDOWS},
    **{f"im2col_by_pixels[{w}]": im2col_by_pixels_case(w) for w in WINDOWS},
    **{f"conv_input_gradient[{w}]": conv_input_gradient_case(w) for w in WINDOWS},
    **{f"conv_input_gradient[{w}, by pixels]": conv_input_gradient_case(w, by_pixels=True) for w in WINDOWS},
    "winograd[same]": winograd_case("same"),
    "winograd[valid]": winograd_case("valid"),
    **{f"max_pool[{w}]": pool_case(w, "max") for w in POOL_WINDOWS},
    **{f"max_pool[{w}, ties]": pool_case(w, "max", ties=True) for w in POOL_WINDOWS},
    **{f"max_pool[{w}, wide]": wide_channels(pool_case(w, "max", ties=True)) for w in POOL_WINDOWS},
    **{f"max_pool_bias_relu[{w}]": pool_bias_relu_case(w) for w in POOL_WINDOWS},
    **{f"max_pool_bias_relu[{w}, ties]": pool_bias_relu_case(w, ties=True) for w in POOL_WINDOWS},
    **{f"max_pool_bias_relu[{w}, wide]": wide_channels(pool_bias_relu_case(w, ties=True)) for w in POOL_WINDOWS},
    "max_pool_bias_relu[pool 2x2, no bias]": pool_bias_relu_case("pool 2x2", bias=False, ties=True),
    "max_pool_bias_relu[pool 2x2, linear]": pool_bias_relu_case("pool 2x2", relu=False, ties=True),
    **{f"avg_pool[{w}]": pool_case(w, "avg") for w in POOL_WINDOWS},
    **{
        f"affine_sample[{kind}, {mode}, {interpolation}]": affine_case(kind, mode, interpolation)
        for kind in AFFINE
        for mode in ("reflect", "wrap", "nearest", "constant")
        for interpolation in ("bilinear", "nearest")
    },
    **{
        f"{kernel}[{i}]": optimizer_case(kernel, options)
        for kernel, variants in OPTIMIZER_OPTIONS.items()
        for i, options in enumerate(variants)
    },
}

#: Which cases exercise each backend method (a method overridden anywhere must appear here).
METHOD_CASES = {
    "bias_activation": [k for k in CASES if k.startswith("bias_activation")],
    "activation_backward": [k for k in CASES if k.startswith("activation_backward")],
    "activation_forward": [k for k in CASES if k.startswith("activation_backward")],  # they check it first
    "column_sum": ["column_sum", "batchnorm"],
    "take_rows": ["take_rows", "take_rows[1d]"],
    "scatter_add_rows": ["scatter_add_rows"],
    "matmul": ["matmul"],
    "all_finite": ["all_finite"],
    "map_blocks": ["map_blocks"],
    "accumulate": ["accumulate"],
    "batchnorm_forward_train": ["batchnorm"],
    "batchnorm_backward": ["batchnorm", "batchnorm[no dx]"],
    "batchnorm_forward_eval": ["batchnorm"],
    "softmax_cross_entropy": [k for k in CASES if k.startswith("softmax_cross_entropy")],
    "dropout_forward": ["dropout_forward", "dropout_forward[spatial]"],
    "dropout_backward": ["dropout_forward", "dropout_forward[spatial]"],
    "im2col": [k for k in CASES if k.startswith("im2col[")],
    "col2im": [k for k in CASES if k.startswith("im2col[")],
    "im2col_by_pixels": [k for k in CASES if k.startswith("im2col_by_pixels")],
    "patches_by_pixel": [k for k in CASES if k.startswith("im2col_by_pixels")],
    "conv_input_gradient": [k for k in CASES if k.startswith("conv_input_gradient")],
    "conv_input_gradient_scratch": [k for k in CASES if k.startswith("conv_input_gradient")],
    "fold_pixel_patches": [k for k in CASES if k.endswith("by pixels]")],
    **{
        f"winograd_{kernel}": [k for k in CASES if k.startswith("winograd")]
        for kernel in ("input", "output", "output_gradient", "kernel", "kernel_gradient")
    },
    "max_pool_forward": [k for k in CASES if k.startswith("max_pool")],
    "max_pool_backward": [k for k in CASES if k.startswith("max_pool")],
    "max_pool_bias_relu_forward": [k for k in CASES if k.startswith("max_pool_bias_relu")],
    "max_pool_relu_backward": [k for k in CASES if k.startswith("max_pool_bias_relu")],
    "avg_pool_forward": [k for k in CASES if k.startswith("avg_pool")],
    "avg_pool_backward": [k for k in CASES if k.startswith("avg_pool")],
    "affine_sample": [k for k in CASES if k.startswith("affine_sample")],
    "lstm_step": ["lstm_step"],
    "lstm_step_backward": ["lstm_step"],
    "gru_step": ["gru_step"],
    "gru_step_backward": ["gru_step"],
    "rnn_step": [k for k in CASES if k.startswith("rnn_step")],
    "rnn_step_backward": [k for k in CASES if k.startswith("rnn_step")],
    **{
        f"{cell}_{direction}": [k for k in PASS_CASES if k.startswith(f"{cell}_pass")]
        for cell in ("rnn", "lstm", "gru")
        for direction in ("forward", "backward")
    },
    "gaussian_noise": ["gaussian_noise"],
    "random_into": ["random_into", "dropout_forward"],
    "merge_forward": [k for k in CASES if k.startswith("merge")],
    "merge_backward": [k for k in CASES if k.startswith("merge")],
    "concatenate_forward": ["concatenate"],
    "concatenate_backward": ["concatenate"],
    "mask_and": ["mask_and"],
    "depthwise_forward": ["depthwise"],
    "depthwise_backward": ["depthwise"],
    "relu_forward": [k for k in CASES if k.startswith("relu[")],
    "relu_backward": [k for k in CASES if k.startswith("relu[")],
    **{kernel: [k for k in CASES if k.startswith(kernel)] for kernel in OPTIMIZER_OPTIONS},
}
#: Cases whose random draws come from a device generator on GPU backends (compared by their invariants instead).
DEVICE_RANDOM = {"dropout_forward", "dropout_forward[spatial]", "gaussian_noise", "random_into"}
