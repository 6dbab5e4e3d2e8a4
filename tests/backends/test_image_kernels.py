"""What the generated parity cases do not reach: NaN in max pooling (it must win, as in PyTorch, so a diverging
network is never hidden from the loss check), and the window geometry Keras's padding rules give."""

from __future__ import annotations

import numpy as np
import pytest

from backends.image_kernels import Window
from tests.backends.kernel_cases import CASES, WINDOWS


@pytest.mark.parametrize("channels", [3, 18])  # the numba kernel's narrow and wide loops
def test_max_pooling_keeps_nan_and_points_at_it(backend, channels):
    x = np.arange(2 * 4 * 4 * channels, dtype="float32").reshape(2, 4, 4, channels)
    x[1, 1, 0, 2] = np.nan  # window (0, 0) of image 1, channel 2, position (1, 0)
    window = Window.of((4, 4), (2, 2), (2, 2))
    shape = (2, 2, 2, channels)
    out, argmax = backend.empty(shape, "float32"), backend.empty(shape, "int32")
    backend.max_pool_forward(backend.asarray(x), window, out, argmax)
    out, argmax = backend.to_numpy(out), backend.to_numpy(argmax)
    assert np.isnan(out[1, 0, 0, 2]) and argmax[1, 0, 0, 2] == 2
    assert np.isfinite(np.delete(out.reshape(-1), np.ravel_multi_index((1, 0, 0, 2), out.shape))).all()
    assert (argmax[0] == 3).all()  # increasing values: the last position of every window


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "padding", "expected"),
    [
        (28, 5, 1, 1, "same", (28, 2)),  # (output size, padding before)
        (14, 5, 1, 1, "valid", (10, 0)),
        (7, 3, 2, 1, "same", (4, 1)),
        (8, 2, 2, 1, "same", (4, 0)),
        (6, 3, 2, 1, "same", (3, 0)),  # the odd padding pixel goes after, as in TensorFlow and Keras
        (9, 3, 1, 3, "same", (9, 3)),
        (9, 3, 2, 2, "valid", (3, 0)),
    ],
)
def test_keras_output_sizes_and_padding(size, kernel, stride, dilation, padding, expected):
    window = Window.of((size, size), (kernel, kernel), (stride, stride), (dilation, dilation), padding)
    assert (window.out_h, window.pad_top) == expected and (window.out_w, window.pad_left) == expected


@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("channels", [1, 5])
@pytest.mark.parametrize("by", ["", ", by pixels"])
def test_input_gradient_by_positions_equals_the_folded_patch_gradient(backend, window, channels, by):
    """conv_input_gradient is the adjoint col2im gives, by other means: the two agree on every backend."""
    dx, folded = CASES[f"conv_input_gradient[{window}{by}]"](
        backend, np.random.default_rng(1), 3, channels, "float64", True
    )
    np.testing.assert_allclose(dx, folded, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 6, 32])
def test_the_input_gradient_takes_the_scratch_its_backend_asks_for(backend, channels):
    """Whatever scratch a backend asks for (the layer allocates it so), conv_input_gradient fills ``dx`` with the
    patch gradient col2im folds; None sends the layer to col2im itself."""
    window = Window.of((9, 9), (5, 5), padding="same")
    rng = np.random.default_rng(2)
    pixels, filters = 2 * window.out_h * window.out_w, 4
    shape = backend.conv_input_gradient_scratch(pixels, window, channels)
    if shape is None:
        return
    kernel = rng.standard_normal((5, 5, channels, filters))
    dz = rng.standard_normal((pixels, filters))
    dx = backend.empty((2, 9, 9, channels), "float64")
    backend.conv_input_gradient(
        backend.asarray(dz), backend.asarray(kernel), window, dx, backend.empty(shape, "float64")
    )
    folded = backend.empty((2, 9, 9, channels), "float64")
    dcols = (kernel.reshape(-1, filters) @ dz.T).reshape(5, 5, channels, 2, 9, 9)
    backend.col2im(backend.asarray(dcols), window, folded)
    np.testing.assert_allclose(backend.to_numpy(dx), backend.to_numpy(folded), rtol=1e-12, atol=1e-12)


def test_max_pooling_of_minus_infinity_sends_nothing_into_the_padding(backend):
    """A padded window whose values inside are all -inf keeps position 0, which lies in the padding: its gradient is
    dropped, not written anywhere in the image."""
    x = np.full((1, 3, 3, 2), -np.inf, "float32")
    x[0, 2, 2] = 1.0
    window = Window.of((3, 3), (3, 3), (2, 2), padding="same")  # one row and column of padding on every side
    assert (window.pad_top, window.pad_left, window.out_h, window.out_w) == (1, 1, 2, 2)
    out, argmax = backend.empty((1, 2, 2, 2), "float32"), backend.empty((1, 2, 2, 2), "int32")
    backend.max_pool_forward(backend.asarray(x), window, out, argmax)
    dx = backend.empty(x.shape, "float32")
    backend.max_pool_backward(backend.asarray(np.ones((1, 2, 2, 2), "float32")), argmax, window, dx)
    expected = np.zeros(x.shape, "float32")
    expected[0, 2, 2] = 1  # window (1, 1) found the one finite value; the other three point into the padding
    np.testing.assert_array_equal(backend.to_numpy(dx), expected)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("channels", [3, 18])
def test_bias_and_relu_inside_the_pooling_equal_the_two_steps(backend, relu, channels):
    """max_pool_bias_relu_forward and max_pool_relu_backward give what the convolution's bias and activation, then
    the pooling, give: the same maxima, positions (ties at ReLU's 0 included), NaN, and pre-activation gradient."""
    rng = np.random.default_rng(3)
    z = rng.integers(-3, 3, (2, 6, 7, channels)).astype("float32")
    z[1, 2, 3, 1] = np.nan
    bias = rng.integers(-1, 2, channels).astype("float32")
    window = Window.of((6, 7), (2, 2), (2, 2))
    shape = (2, 3, 3, channels)
    dy = backend.asarray(rng.standard_normal(shape).astype("float32"))
    kind = "relu" if relu else "linear"

    y = backend.asarray(z.copy())
    backend.bias_activation(y.reshape(-1, channels), backend.asarray(bias), kind, 0.0, y.reshape(-1, channels))
    out, argmax = backend.empty(shape, "float32"), backend.empty(shape, "int32")
    backend.max_pool_forward(y, window, out, argmax)
    dy_y = backend.empty(z.shape, "float32")
    backend.max_pool_backward(dy, argmax, window, dy_y)
    dz = backend.empty(z.shape, "float32")
    backend.activation_backward(
        dy_y.reshape(-1, channels), y.reshape(-1, channels), None, kind, 0.0, dz.reshape(-1, channels)
    )

    fused_out, fused_argmax = backend.empty(shape, "float32"), backend.empty(shape, "int32")
    backend.max_pool_bias_relu_forward(backend.asarray(z), backend.asarray(bias), relu, window, fused_out, fused_argmax)
    fused_dz = backend.empty(z.shape, "float32")
    backend.max_pool_relu_backward(dy, fused_argmax, fused_out, relu, window, fused_dz)

    np.testing.assert_array_equal(backend.to_numpy(fused_out), backend.to_numpy(out))
    np.testing.assert_array_equal(backend.to_numpy(fused_argmax), backend.to_numpy(argmax))
    np.testing.assert_array_equal(backend.to_numpy(fused_dz), backend.to_numpy(dz))


@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("channels", [1, 6])
def test_patches_by_pixel_are_the_patch_major_matrix_transposed(backend, window, channels):
    by_pixel, patch_major = CASES[f"im2col_by_pixels[{window}]"](
        backend, np.random.default_rng(4), 3, channels, "float64", True
    )
    np.testing.assert_array_equal(by_pixel, patch_major)
