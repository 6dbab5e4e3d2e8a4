"""The 2-D convolution: a kernel slid over the image and summed into feature maps, as patch extraction plus one
matrix product (:mod:`backends.image_kernels`)."""

from __future__ import annotations

from backends.image_kernels import Window
from netcore.errors import ConfigurationError, ShapeError
from netcore.layers.base import InBlocks, Layer, ParamSpec, pair, positive_int, sum_in_order
from netcore.layers.core import KernelLayer


def image_shape(layer: Layer, input_shape) -> tuple[int, int, int]:
    """``input_shape`` if it is an image shape ``(height, width, channels)``, else a ShapeError naming the layer."""
    if len(input_shape) != 3:
        raise ShapeError(
            f"{layer.name} ({type(layer).__name__}) takes images (height, width, channels), got input shape "
            f"{tuple(input_shape)}; give the model input_shape=(h, w, c) or reshape flat rows with Reshape"
        )
    return tuple(input_shape)


def padding_name(owner: str, padding) -> str:
    value = str(padding).lower()
    if value not in ("valid", "same"):
        raise ConfigurationError(f"{owner} padding must be 'valid' or 'same', got {padding!r}")
    return value


def channels_last(owner: str, data_format) -> None:
    if data_format not in (None, "channels_last"):
        raise ConfigurationError(
            f"{owner}: netcore stores images channels-last (batch, height, width, channels); got data_format="
            f"{data_format!r} (transpose the data with X.transpose(0, 2, 3, 1))"
        )


class Conv2D(InBlocks, KernelLayer):
    """2-D convolution over channels-last images: ``y[n, i, j, f] = f(b[f] + sum_{p, q, c} x[n, i*sh + p*dh,
    j*sw + q*dw, c] W[p, q, c, f])`` (a cross-correlation, as in every deep-learning library).

    Keras's arguments and meanings: ``filters``, ``kernel_size`` and ``strides`` (an int or a pair),
    ``padding="valid"`` (only windows inside the image) or ``"same"`` (``ceil(size / stride)`` outputs, zero padding
    split with the smaller half on top and left), ``dilation_rate``, ``activation``, ``use_bias``. The kernel is stored
    and returned by ``get_weights()`` as ``(kh, kw, in_channels, filters)``, then the bias ``(filters,)``. The
    initialiser defaults to He for the ReLU family and Xavier otherwise, with ``fan_in = kh * kw * in_channels`` and
    ``fan_out = kh * kw * filters`` (the receptive field, as Keras and PyTorch count it).
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=1,
        padding: str = "valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        name: str | None = None,
        trainable: bool = True,
    ):
        owner = "Conv2D"
        self.filters = positive_int(owner, "filters", filters)
        self.kernel_size = pair(owner, "kernel_size", kernel_size)
        self.strides = pair(owner, "strides", strides)
        self.dilation_rate = pair(owner, "dilation_rate", dilation_rate)
        self.padding = padding_name(owner, padding)
        channels_last(owner, data_format)
        super().__init__(
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            name,
            trainable,
        )
        if not self.activation.elementwise:
            raise ConfigurationError(f"{owner} activation must act element by element, not {self.activation.kind!r}")
        self.window: Window | None = None

    def build(self, input_shape):
        height, width, channels = image_shape(self, input_shape)
        self.window = Window.of(
            (height, width), self.kernel_size, self.strides, self.dilation_rate, self.padding, owner=self.name
        )
        self.input_shape = (height, width, channels)
        self.output_shape = (self.window.out_h, self.window.out_w, self.filters)
        return self.output_shape

    @property
    def patch_size(self) -> int:
        """Rows of the kernel as a matrix: ``kh * kw * in_channels``."""
        return self.window.size * self.n_in

    def param_specs(self):
        kh, kw = self.kernel_size
        fan = (kh * kw * self.n_in, kh * kw * self.filters)
        return self.kernel_specs((kh, kw, self.n_in, self.filters), fan)

    def config(self):
        geometry = {"kernel_size": list(self.kernel_size), "strides": list(self.strides), "padding": self.padding}
        return {"filters": self.filters, **geometry, "dilation_rate": list(self.dilation_rate), **super().config()}

    def _patches(self, x, slot, build: bool = True):
        """The input's patches as a ``(pixels, kh * kw * channels)`` matrix in the work buffer of ``slot``, built
        there unless ``build`` is False (then as an earlier call left them): stored pixel by pixel where the backend
        says so (``patches_by_pixel``), else patch-major and seen transposed; for 1x1 kernels at stride 1, a view of
        the input itself."""
        if self.window.is_identity:
            return x.reshape(-1, self.n_in)
        w, backend = self.window, self.backend
        if backend.patches_by_pixel(w, self.n_in):
            cols = self.buffer(f"cols {slot}", (x.shape[0], w.out_h, w.out_w, *self.kernel_size, self.n_in), x.dtype)
            if build:
                backend.im2col_by_pixels(x, w, cols)
            return cols.reshape(-1, self.patch_size)
        cols = self.buffer(f"cols {slot}", (*self.kernel_size, self.n_in, x.shape[0], w.out_h, w.out_w), x.dtype)
        if build:
            backend.im2col(x, w, cols)
        return cols.reshape(self.patch_size, -1).T

    @property
    def by_winograd(self) -> bool:
        """Whether this convolution runs as Winograd's F(2x2, 3x3) (:mod:`backends.winograd_kernels`) rather than as
        a product with its patches: the backend's choice for its window, channels and filters."""
        return self.backend.convolves_by_winograd(self.window, self.n_in, self.filters)

    def _tiles(self, name: str, images: int, out_hw, width: int, dtype):
        """A ``(16, tiles, width)`` tile array of ``images`` outputs of ``out_hw`` pixels, its 16 matrices apart by
        one row more than they hold (a power-of-two stride between them put them on the same cache sets)."""
        count = self.backend.winograd_tile_count(images, *out_hw)
        return self.buffer(name, (16, count + 1, width), dtype)[:, :count]

    def _winograd_kernel(self, name: str, kernel=None):
        """The kernel (``params["W"]`` unless given, as ``(3, 3, in, out)``) in the Winograd domain, ``(16, in,
        out)``, in the buffer ``name``."""
        kernel = self.params["W"] if kernel is None else kernel
        u = self.buffer(f"winograd {name}", (16, *kernel.shape[2:]), kernel.dtype)
        return self.backend.winograd_kernel(kernel, u)

    def _input_tiles(self, x, slot, build: bool = True):
        """The transformed input tiles of images ``x`` in the work buffer of ``slot``, built unless ``build`` is
        False (as :meth:`_patches`)."""
        w = self.window
        tiles = self._tiles(f"tiles {slot}", x.shape[0], (w.out_h, w.out_w), self.n_in, x.dtype)
        if build:
            self.backend.winograd_input(x, w.pad_top, w.pad_left, w.out_h, w.out_w, tiles)
        return tiles

    def _winograd_convolve(self, tiles, u, name: str, out):
        """``out`` ``(images, h, w, width)`` from transformed tiles and a transformed kernel: 16 products, then the
        output transform."""
        products = self._tiles(name, out.shape[0], out.shape[1:3], u.shape[2], out.dtype)
        self.backend.matmul(tiles, u, out=products)
        return self.backend.winograd_output(products, out)

    def _winograd_kernel_gradient(self, tiles, dz, lane, out):
        """``out`` ``(9 * in, out)`` = the kernel gradient of a block from its input tiles and output gradient."""
        w, backend = self.window, self.backend
        dz = dz.reshape(self.batch_shape(-1))
        grad_tiles = self._tiles(f"gradient tiles {lane}", dz.shape[0], (w.out_h, w.out_w), self.filters, dz.dtype)
        backend.winograd_output_gradient(dz, grad_tiles)
        products = self.buffer(f"kernel products {lane}", (16, self.n_in, self.filters), dz.dtype)
        backend.matmul(tiles.transpose(0, 2, 1), grad_tiles, out=products)
        backend.winograd_kernel_gradient(products, out.reshape(*self.kernel_size, self.n_in, self.filters))

    def _winograd_input_gradient(self, dz, flipped, lane, dx):
        """``dx`` of a block: its output gradient, padded by ``2 - pad``, convolved with the flipped kernel."""
        w, backend = self.window, self.backend
        dz = dz.reshape(self.batch_shape(-1))
        tiles = self._tiles(f"gradient input tiles {lane}", dz.shape[0], dx.shape[1:3], self.filters, dz.dtype)
        backend.winograd_input(dz, 2 - w.pad_top, 2 - w.pad_left, dx.shape[1], dx.shape[2], tiles)
        self._winograd_convolve(tiles, flipped, f"input gradient products {lane}", dx)

    def _patch_bytes(self, n: int, dtype) -> int:
        return n * self.patch_size * self.window.out_h * self.window.out_w * dtype.itemsize

    def _keeps_patches(self, n: int, dtype) -> bool:
        """Whether every block keeps its patches (or Winograd's input tiles) for the backward pass, else each block's
        are rebuilt there, in a buffer per thread: where the batch's patches fit the backend's
        ``patch_block_bytes``, its tiles ``kept_tile_bytes``."""
        if self.by_winograd:
            budget = self.backend.kept_tile_bytes
            tiles = self.backend.winograd_tile_count(n, self.window.out_h, self.window.out_w)
            return budget is None or 16 * tiles * self.n_in * dtype.itemsize <= budget
        budget = self.backend.patch_block_bytes
        return budget is None or self.window.is_identity or self._patch_bytes(n, dtype) <= budget

    def block_count(self, n: int, dtype) -> int:
        """At least one block per block thread, and enough that each block's patches fit ``patch_block_bytes``
        (by Winograd's form too: blocks of that size keep its tile arrays in cache)."""
        budget = self.backend.patch_block_bytes
        if budget is None or self.window.is_identity:
            return self.backend.block_threads
        return max(-(-self._patch_bytes(n, dtype) // budget), self.backend.block_threads)

    def _pixels(self, images: slice) -> slice:
        """The rows of the ``(pixels, filters)`` outputs that belong to a block of images."""
        per_image = self.window.out_h * self.window.out_w
        return slice(images.start * per_image, images.stop * per_image)

    def bias_relu(self):
        """``(bias, relu)`` where the bias (None without one) and the activation (ReLU, or none) may be left to a
        max-pooling that reads this convolution's output alone (:class:`netcore.models.block_chain.BlockChain`);
        None for other activations (the pooling applies only these two)."""
        if self.activation.kind not in ("relu", "linear"):
            return None
        return self.params.get("b"), self.activation.kind == "relu"

    def forward_blocks(self, x, training, blocks, hand_over: bool = False):
        """With ``hand_over``, the output is the product alone: the bias and activation (see :meth:`bias_relu`) are
        the next layer's to apply, and the gradient it sends back is the product's."""
        backend, act = self.backend, self.activation
        kernel, bias = self.params["W"].reshape(self.patch_size, self.filters), self.params.get("b")
        keep = training and self._keeps_patches(x.shape[0], x.dtype)  # predicting, one buffer per thread will do
        pixels = x.shape[0] * self.window.out_h * self.window.out_w
        z = self.buffer("z", (pixels, self.filters), x.dtype)
        y = z if hand_over or act.kind == "linear" else self.buffer("y", (pixels, self.filters), x.dtype)

        winograd = self._winograd_kernel("W") if self.by_winograd else None

        def convolve(lane, index):
            images = blocks[index]
            rows = self._pixels(images)
            slot = index if keep else lane
            if winograd is None:
                backend.matmul(self._patches(x[images], slot), kernel, out=z[rows])
            else:
                tiles = self._input_tiles(x[images], slot)
                self._winograd_convolve(tiles, winograd, f"products {lane}", z[rows].reshape(self.batch_shape(-1)))
            if not hand_over:
                backend.bias_activation(z[rows], bias, act.kind, act.alpha, y[rows])

        if training:
            self.check_trainable(act)
            kept = blocks if keep else None  # the patches kept per block
            self._cache = (x, kept, y, z if act.needs_preactivation else None, hand_over)
        return y.reshape(self.batch_shape(x.shape[0])), convolve

    def backward_blocks(self, dy, need_dx, blocks):
        backend, act = self.backend, self.activation
        x, kept_for, y, z, handed_over = self._cache
        n = x.shape[0]
        kept = kept_for == blocks  # the forward's patches, where it ran the same blocks
        dy = dy.reshape(y.shape)
        dz = dy if handed_over or act.kind == "linear" else self.buffer("dz", y.shape, dy.dtype)
        kernel = self.params["W"].reshape(self.patch_size, self.filters)
        dx = self.buffer("dx", self.batch_shape(n, self.input_shape), dy.dtype) if need_dx else None
        partials = self._gradient_parts(len(blocks), dy.dtype)
        w, winograd = self.window, self.by_winograd
        flipped = None  # by Winograd's form, the input gradient's kernel: flipped and transposed
        if winograd and need_dx:
            flipped = self._winograd_kernel("flipped", self.params["W"][::-1, ::-1].transpose(0, 1, 3, 2))

        def differentiate(lane, index):
            images = blocks[index]
            rows = self._pixels(images)
            if dz is not dy:
                pre = None if z is None else z[rows]
                backend.activation_backward(dy[rows], y[rows], pre, act.kind, act.alpha, dz[rows])
            if partials is not None:
                inputs = self._input_tiles if winograd else self._patches
                built = inputs(x[images], index, build=False) if kept else inputs(x[images], lane)
                if winograd:
                    self._winograd_kernel_gradient(built, dz[rows], lane, partials[index][0])
                else:
                    backend.matmul(built.T, dz[rows], out=partials[index][0])
                if self.use_bias:
                    backend.column_sum(dz[rows], out=partials[index][1])
            if dx is None:
                return
            if winograd:
                self._winograd_input_gradient(dz[rows], flipped, lane, dx[images])
                return
            if w.is_identity:
                backend.matmul(dz[rows], kernel.T, out=dx[images].reshape(-1, self.n_in))
                return
            count = images.stop - images.start
            scratch_shape = backend.conv_input_gradient_scratch(count * w.out_h * w.out_w, w, self.n_in)
            if scratch_shape is not None:
                scratch = self.buffer(f"dx rows {lane}", scratch_shape, dz.dtype)
                backend.conv_input_gradient(dz[rows], self.params["W"], w, dx[images], scratch)
                return
            dcols = self.buffer(f"dcols {lane}", (self.patch_size, count * w.out_h * w.out_w), dz.dtype)
            backend.matmul(kernel, dz[rows].T, out=dcols)
            backend.col2im(dcols.reshape(*self.kernel_size, self.n_in, count, w.out_h, w.out_w), w, dx[images])

        return dx, differentiate, lambda: self._sum_gradients(partials)

    def _gradient_parts(self, count: int, dtype):
        """Per block, where its share of the kernel and bias gradients goes: the gradients themselves for one block,
        else a buffer per block, summed in block order afterwards (so the result does not depend on which thread
        finished first). None for a frozen layer."""
        if not self.trainable:
            return None
        kernel_shape = (self.patch_size, self.filters)
        if count == 1:
            return [(self.grads["W"].reshape(kernel_shape), self.grads.get("b"))]
        bias_shape = (self.filters,)
        return [
            (
                self.buffer(f"dW {i}", kernel_shape, dtype),
                self.buffer(f"db {i}", bias_shape, dtype) if self.use_bias else None,
            )
            for i in range(count)
        ]

    def _sum_gradients(self, partials) -> None:
        if partials is None or len(partials) == 1:
            return
        sum_in_order(self.grads["W"].reshape(partials[0][0].shape), [part[0] for part in partials])
        if self.use_bias:
            sum_in_order(self.grads["b"], [part[1] for part in partials])


class DepthwiseConv2D(Conv2D):
    """Each channel convolved with its own ``depth_multiplier`` filters (Keras's layer; MobileNet's building block):
    ``y[n, i, j, c * m + k] = f(b[c * m + k] + sum_{p, q} x[n, i*sh + p*dh, j*sw + q*dw, c] W[p, q, c, k])``. The
    kernel is ``(kh, kw, channels, depth_multiplier)`` and the bias ``(channels * depth_multiplier,)``; strides,
    padding, dilation and activation as :class:`Conv2D`. Its fans are Keras's (``kh * kw * channels`` in,
    ``kh * kw * depth_multiplier`` out)."""

    splits_batch = False
    in_blocks = False
    #: Each channel has its own few filters: no products for Winograd's form to shrink.
    by_winograd = False

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias: bool = True,
        depthwise_initializer=None,
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        depthwise_constraint=None,
        name: str | None = None,
        trainable: bool = True,
    ):
        self.depth_multiplier = positive_int("DepthwiseConv2D", "depth_multiplier", depth_multiplier)
        super().__init__(
            1,  # filters: replaced by channels * depth_multiplier once the channels are known
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            depthwise_initializer,
            bias_initializer,
            depthwise_regularizer,
            bias_regularizer,
            depthwise_constraint,
            name,
            trainable,
        )

    def build(self, input_shape):
        self.filters = image_shape(self, input_shape)[2] * self.depth_multiplier
        return super().build(input_shape)

    def param_specs(self):
        kh, kw = self.kernel_size
        channels, m = self.n_in, self.depth_multiplier
        fan = (kh * kw * channels, kh * kw * m)
        specs = [
            ParamSpec("W", (kh, kw, channels, m), self.kernel_initializer, self.kernel_regularizer,
                      self.kernel_constraint, fan),
        ]  # fmt: skip
        if self.use_bias:
            specs.append(ParamSpec("b", (channels * m,), self.bias_initializer, self.bias_regularizer, None, fan))
        return specs

    def config(self):
        config = super().config()
        del config["filters"]
        config["depthwise_regularizer"] = config.pop("kernel_regularizer")
        config["depthwise_constraint"] = config.pop("kernel_constraint")
        return {"depth_multiplier": self.depth_multiplier, **config}

    def _columns(self, x):
        """The patches as ``(kh * kw, channels, pixels)``."""
        w = self.window
        cols = self.buffer("cols", (*self.kernel_size, self.n_in, x.shape[0], w.out_h, w.out_w), x.dtype)
        self.backend.im2col(x, w, cols)
        return cols.reshape(w.size, self.n_in, -1)

    def _kernel(self, store):
        return store["W"].reshape(self.window.size, self.n_in, self.depth_multiplier)

    def forward(self, x, training):
        backend, act = self.backend, self.activation
        cols = self._columns(x)
        pixels = cols.shape[2]
        z = self.buffer("z", (pixels, self.filters), x.dtype)
        scratch = self.buffer("scratch", (self.n_in, pixels, self.depth_multiplier), x.dtype)
        backend.depthwise_forward(cols, self._kernel(self.params), z, scratch)
        y = z if act.kind == "linear" else self.buffer("y", (pixels, self.filters), x.dtype)
        backend.bias_activation(z, self.params.get("b"), act.kind, act.alpha, y)
        if training:
            self.check_trainable(act)
            self._cache = (cols, y, z if act.needs_preactivation else None)
        return y.reshape(self.batch_shape(x.shape[0]))

    def backward(self, dy, need_dx):
        backend, act = self.backend, self.activation
        cols, y, z = self._cache
        dz = self.preactivation_gradient(dy.reshape(y.shape), y, z, act)
        dkernel = self._kernel(self.grads) if self.trainable else None
        dcols = self.buffer("dcols", cols.shape, dz.dtype) if need_dx else None
        scratch = self.buffer("scratch", (self.n_in, cols.shape[2], self.depth_multiplier), dz.dtype)
        backend.depthwise_backward(cols, self._kernel(self.params), dz, dkernel, dcols, scratch)
        if self.trainable and self.use_bias:
            backend.column_sum(dz, out=self.grads["b"])
        if not need_dx:
            return None
        w = self.window
        n = cols.shape[2] // (w.out_h * w.out_w)
        dx = self.buffer("dx", self.batch_shape(n, self.input_shape), dz.dtype)
        return backend.col2im(dcols.reshape(*self.kernel_size, self.n_in, n, w.out_h, w.out_w), w, dx)
