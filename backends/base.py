"""The array-backend interface: every operation the network core needs, written once over ``self.xp``.

The defaults here are plain array expressions that work for any NumPy-compatible namespace (NumPy, CuPy). A backend
subclass overrides only the kernels where fusing or compiling pays, and an override that cannot handle an input
calls ``super()`` and returns its result. The kernels are grouped by topic in small mixin modules so each reads in
one sitting:

- :mod:`backends.arrays`: allocation, host transfer, the seeded generator, matrix products, row gathers.
- :mod:`backends.activation_kernels`: bias + activation forward and activation backward.
- :mod:`backends.loss_kernels`: every loss as value + gradient in one call, fused softmax / sigmoid cross-entropy.
- :mod:`backends.optimizer_kernels`: in-place updates of flat parameter buffers, one call per step.
- :mod:`backends.layer_kernels`: inverted dropout, Gaussian noise and batch normalisation.
- :mod:`backends.image_kernels`: convolution patches (``im2col`` / ``col2im``) and pooling over channels-last images.
- :mod:`backends.winograd_kernels`: 3x3 convolutions at stride 1 by Winograd's F(2x2, 3x3) transforms.
- :mod:`backends.augment_kernels`: random per-image transforms for the augmentation layers, and their application.
- :mod:`backends.recurrent_kernels`: one time step of SimpleRNN, LSTM and GRU, forward and backward.
- :mod:`backends.merge_kernels`: the merge layers of functional models (sums, products, extrema, concatenation).
"""

from __future__ import annotations

import contextlib

from backends.activation_kernels import ActivationKernels
from backends.arrays import ArrayOps
from backends.augment_kernels import AugmentKernels
from backends.image_kernels import ImageKernels
from backends.layer_kernels import LayerKernels
from backends.loss_kernels import LossKernels
from backends.merge_kernels import MergeKernels
from backends.optimizer_kernels import OptimizerKernels
from backends.recurrent_kernels import RecurrentKernels
from backends.winograd_kernels import WinogradKernels

#: What :meth:`Backend.scope` returns on the CPU (a null context is reusable and reentrant); a caller that sees it
#: need not enter it.
NO_SCOPE = contextlib.nullcontext()


class Backend(
    ArrayOps,
    ActivationKernels,
    LossKernels,
    OptimizerKernels,
    LayerKernels,
    ImageKernels,
    WinogradKernels,
    AugmentKernels,
    RecurrentKernels,
    MergeKernels,
):
    """One device's array namespace plus its hot kernels.

    Subclasses set :attr:`name` and :attr:`xp`, implement :meth:`unavailable_reason`, and override kernels.
    """

    name = "base"
    #: Package extra a user installs to get this backend; named in error messages.
    install_hint = ""
    #: How float32 matrix products may round: "highest" (true float32) or "high" (TF32 tensor cores, read by the
    #: backends of devices that have them; CPUs do not). Set for every backend with :func:`set_matmul_precision`.
    matmul_precision = "highest"

    @classmethod
    def unavailable_reason(cls, index: int = 0) -> str | None:
        """Why this backend (device ``index`` of it) cannot run here, or ``None`` when it can. Never raises."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def scope(self):
        """A context manager that makes this backend's device current (a no-op on the CPU: one shared, reusable
        null context)."""
        return NO_SCOPE

    def synchronize(self) -> None:
        """Wait for queued device work; a no-op on the CPU backends (timing code calls it)."""
