"""Arrays of other libraries that implement DLPack reach the model without a host round trip."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import validation
from netcore.layers import Dense


def model(device="numpy"):
    net = netcore.Sequential([Dense(8, "relu"), Dense(3, "softmax")], input_dim=4, device=device, seed=0)
    return net.compile("adam", "cross_entropy", ["accuracy"])


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_a_cpu_tensor_is_viewed_not_copied(torch, device):
    tensor = torch.randn(64, 4)
    net = model(device)
    X = validation.features(net, tensor)
    assert np.shares_memory(X, tensor.numpy())
    labels = torch.arange(64) % 3
    history = net.fit(tensor, labels, epochs=2, verbose=0)
    assert np.isfinite(history["loss"]).all()
    np.testing.assert_array_equal(net.predict(tensor), net.predict(tensor.numpy()))
    assert net.evaluate(tensor, labels) == net.evaluate(tensor.numpy(), labels.numpy())


def test_a_tensor_that_requires_grad_falls_back_to_the_usual_rules(torch):
    tensor = torch.randn(8, 4, requires_grad=True)
    with pytest.raises(netcore.DTypeError, match=r"detach\(\)"):
        model().predict(tensor)
    assert model().predict(tensor.detach()).shape == (8, 3)


def test_objects_without_dlpack_are_left_to_the_other_rules():
    backend = model().backend
    assert backend.from_dlpack([[1.0, 2.0]]) is None
    assert backend.from_dlpack(np.zeros(3)) is None  # native already


@pytest.mark.gpu
def test_a_cuda_tensor_on_the_models_gpu_is_viewed_not_copied(torch):
    pytest.importorskip("cupy")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device here")
    net = model("cupy")
    tensor = torch.randn(64, 4, device="cuda")
    X = validation.features(net, tensor)
    assert X.data.ptr == tensor.data_ptr()
    assert net.predict(tensor).shape == (64, 3)
