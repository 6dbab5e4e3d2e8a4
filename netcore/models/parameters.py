"""A model's flat buffers: every parameter in one array, their gradients in another, running statistics in a third,
and each layer bound to views of them, so an optimizer step is one kernel over the whole model.

Trainable parameters come first, so the optimizer updates one contiguous prefix and frozen weights are never
touched. Layers may belong to several models (transfer learning): a model that finds a layer bound to another
model's buffers takes it back (:meth:`FlatBuffers.claim`), copying the layer's current weights into its own.
"""

from __future__ import annotations

import math

from netcore.errors import ShapeError


class FlatBuffers:
    """The flat parameter, gradient and state buffers of ``layers`` (each once, in model order) on ``backend``."""

    def __init__(self, backend, dtype, layers: list, token):
        self.backend, self.dtype, self.layers, self.token = backend, dtype, list(layers), token
        self.layout: tuple[bool, ...] = ()

    # ----------------------------------------------------------------- layout
    def allocate(self, trainable: tuple[bool, ...]) -> dict:
        """Lay out the buffers for the given trainable flags (one per layer) and bind every layer to its views.

        Returns each layer's views from before (``{id: (backend, params, state)}``) for :meth:`carry`.
        """
        previous = {id(layer): (layer.backend, dict(layer.params), dict(layer.state)) for layer in self.layers}
        self.layout = tuple(trainable)
        frozen = {id(layer) for layer, flag in zip(self.layers, self.layout, strict=True) if not flag}
        specs = [(layer, spec) for layer in self.layers for spec in layer.param_specs()]
        self.specs = [s for s in specs if id(s[0]) not in frozen] + [s for s in specs if id(s[0]) in frozen]
        self.state_specs = [(layer, spec) for layer in self.layers for spec in layer.state_specs()]
        trained = [(layer, spec) for layer, spec in self.specs if id(layer) not in frozen]
        n_params = sum(math.prod(spec.shape) for _, spec in self.specs)
        self.n_trained = sum(math.prod(spec.shape) for _, spec in trained)
        self.n_trained_specs = len(trained)
        self.has_penalties = any(spec.regularizer is not None for _, spec in trained)
        self.has_constraints = any(spec.constraint is not None for _, spec in trained)
        self.params = self.backend.empty((n_params,), self.dtype)
        self.grads = self.backend.zeros((n_params,), self.dtype)
        self.state = self.backend.empty((sum(math.prod(spec.shape) for _, spec in self.state_specs),), self.dtype)
        self.bind()
        return previous

    def bind(self) -> None:
        """Hand every layer its views into the buffers (after a layout and after a device move)."""
        #: What the optimizer updates: the trainable prefix of the flat buffers.
        self.trained_params, self.trained_grads = self.params[: self.n_trained], self.grads[: self.n_trained]
        views = {id(layer): ({}, {}, {}) for layer in self.layers}
        offset = 0
        for layer, spec in self.specs:
            size = math.prod(spec.shape)
            views[id(layer)][0][spec.name] = self.params[offset : offset + size].reshape(spec.shape)
            views[id(layer)][1][spec.name] = self.grads[offset : offset + size].reshape(spec.shape)
            offset += size
        offset = 0
        for layer, spec in self.state_specs:
            size = math.prod(spec.shape)
            views[id(layer)][2][spec.name] = self.state[offset : offset + size].reshape(spec.shape)
            offset += size
        for layer in self.layers:
            layer.bind(self.backend, *views[id(layer)], owner=self.token)

    def initialize(self, rng, carried: dict) -> None:
        """Draw the initial weights and statistics of every layer that did not bring its own, in layer order (so a
        seed gives the same weights whatever is frozen)."""
        for layer in self.layers:
            for spec in layer.param_specs():
                if spec.name not in carried[id(layer)][1]:
                    fan_in, fan_out = spec.fan
                    layer.params[spec.name][...] = spec.initializer(
                        self.backend, rng, spec.shape, fan_in, fan_out, self.dtype
                    )
            for spec in layer.state_specs():
                if spec.name not in carried[id(layer)][2]:
                    layer.state[spec.name][...] = spec.initial

    def check_carried(self) -> None:
        """Layers that bring weights must have been built for weights of the shapes this model gives them."""
        for layer in self.layers:
            for store, specs in ((layer.params, layer.param_specs()), (layer.state, layer.state_specs())):
                for spec in specs:
                    value = store.get(spec.name)
                    if value is not None and tuple(value.shape) != tuple(spec.shape):
                        raise ShapeError(
                            f"{layer.name} carries {spec.name} of shape {tuple(value.shape)} from the model it was "
                            f"trained in, but here its input {layer.input_shape} needs {tuple(spec.shape)}"
                        )

    def carry(self, previous: dict) -> None:
        """Copy the weights and running statistics layers had before :meth:`allocate` into their new views
        (converted to this model's device and dtype)."""
        for layer in self.layers:
            old_backend, old_params, old_state = previous[id(layer)]
            for store, old in ((layer.params, old_params), (layer.state, old_state)):
                for name, value in old.items():
                    target = store.get(name)
                    if target is None:
                        continue
                    if old_backend is self.backend:
                        target[...] = value
                    else:
                        target[...] = self.backend.asarray(old_backend.to_numpy(value), self.dtype)

    def owns_all(self) -> bool:
        token = self.token
        for layer in self.layers:  # noqa: SIM110 - a loop, not all() over a generator: runs on every call of the model
            if layer.owner is not token:
                return False
        return True

    def claim(self) -> None:
        """Take back layers another model has used since: copy their current weights into these buffers and bind
        them here again (the caller re-fixes their shapes first)."""
        self.check_carried()
        self.carry(self.allocate(self.layout))

    def move(self, target) -> None:
        """Move the buffers to another backend and bind the layers to the moved views."""
        source = self.backend
        self.backend = target
        self.params = target.asarray(source.to_numpy(self.params), self.dtype)
        self.grads = target.asarray(source.to_numpy(self.grads), self.dtype)
        self.state = target.asarray(source.to_numpy(self.state), self.dtype)
        self.bind()

    # ----------------------------------------------------------------- penalties and constraints
    def trained_specs(self):
        return self.specs[: self.n_trained_specs]

    def add_penalties(self):
        """Add every penalty's gradient to the gradient buffer and return the summed penalty (0.0 if none)."""
        total = 0.0
        for layer, spec in self.trained_specs():
            if spec.regularizer is not None:
                total = total + spec.regularizer.penalty(self.backend, layer.params[spec.name])
                spec.regularizer.add_gradient(self.backend, layer.params[spec.name], layer.grads[spec.name])
        return total

    def constrain(self) -> None:
        for layer, spec in self.trained_specs():
            if spec.constraint is not None:  # per output unit: a kernel's last axis (a Dense column, a filter)
                weights = layer.params[spec.name]
                spec.constraint.apply(self.backend, weights.reshape(-1, weights.shape[-1]))
