"""The side-by-side loop of the PyTorch oracle tests of image and recurrent layers: the same mini-batches through a
netcore model and its PyTorch twin, then every loss and every weight compared."""

from __future__ import annotations

from tests.core.test_torch_oracle import assert_close, torch

STEPS, ROWS, BATCH = 48, 32, 8


def train_both(model, twin, torch_optimizer, X, y, dtype, twin_weights, clip=None):
    """``STEPS`` steps of softmax cross-entropy (per step of a sequence output: over the last axis) on rotating
    mini-batches of ``X``; ``clip`` holds netcore's clipping options, applied to the twin with PyTorch's own
    functions. Asserts equal losses and final weights (``twin_weights()`` in get_weights order)."""
    F = torch.nn.functional
    clip = clip or {}
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    saved = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    ours, theirs = [], []
    try:
        for step in range(STEPS):
            rows = slice((step * BATCH) % ROWS, (step * BATCH) % ROWS + BATCH)
            ours.append(model.train_on_batch(X[rows], y[rows]))
            torch_optimizer.zero_grad()
            logits = twin(tX[rows])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ty[rows].reshape(-1))
            loss.backward()
            trained = [p for p in twin.parameters() if p.requires_grad]
            if "global_clipnorm" in clip:
                torch.nn.utils.clip_grad_norm_(trained, clip["global_clipnorm"])
            if "clipvalue" in clip:
                torch.nn.utils.clip_grad_value_(trained, clip["clipvalue"])
            torch_optimizer.step()
            theirs.append(loss.item())
    finally:
        torch.set_default_dtype(saved)
    assert_close(ours, theirs, dtype, "losses")
    for i, (got, want) in enumerate(zip(model.get_weights(), twin_weights(), strict=True)):
        assert_close(got, want, dtype, f"weight {i}")
