"""A hash of everything a call could change in a model: weights, optimizer state and counters, generator state."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def fingerprint(model) -> str:
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    optimizer = model.optimizer
    if optimizer is not None and optimizer.backend is not None:
        for name in sorted(optimizer.state):
            digest.update(model.backend.to_numpy(optimizer.state[name]).tobytes())
        digest.update(json.dumps(optimizer.scalar_state(), sort_keys=True).encode())
    digest.update(json.dumps(model.backend.rng_state(model.rng), sort_keys=True, default=str).encode())
    digest.update(str(model.epochs_trained).encode())
    return digest.hexdigest()
