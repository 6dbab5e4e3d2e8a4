"""Functional models: networks that are graphs rather than stacks.

1. A small ResNet on the digit images: two residual blocks, the second with a strided 1x1 projection shortcut.
2. A model with two inputs (the image and a table of its row and column ink) and two outputs (the digit, and
   whether it is 5 or more), trained with a weighted sum of the two losses.
3. Transfer learning in Keras's form: a base taken from a trained model with get_layer(...).output, frozen, and
   a new head: Model(inputs=base_model.input, outputs=output).

python examples/08_functional.py [--device numba]
"""

import argparse

import numpy as np

import netcore
from netcore import datasets
from netcore.layers import (
    Activation,
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    Input,
)
from netcore.models import Model

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

data = datasets.load("digits", seed=0, as_images=True)  # (n, 8, 8, 1), pixels in [0, 1]


def residual_block(x, filters, strides=1):
    """conv-BN-relu-conv-BN plus the shortcut (a 1x1 convolution where the shape changes), then relu."""
    y = Activation("relu")(BatchNormalization()(Conv2D(filters, 3, strides=strides, padding="same")(x)))
    y = BatchNormalization()(Conv2D(filters, 3, padding="same")(y))
    if strides != 1 or x.shape[-1] != filters:
        x = BatchNormalization()(Conv2D(filters, 1, strides=strides)(x))
    return Activation("relu")(Add()([x, y]))


def resnet(classes, seed):
    inputs = Input(shape=(8, 8, 1), name="image")
    x = Activation("relu")(BatchNormalization()(Conv2D(16, 3, padding="same")(inputs)))
    x = residual_block(x, 16)
    x = residual_block(x, 32, strides=2)
    features = GlobalAveragePooling2D(name="features")(x)
    outputs = Dense(classes, activation="softmax")(features)
    return Model(inputs=inputs, outputs=outputs, device=args.device, seed=seed)


# 1. A small ResNet on all ten digits.
model = resnet(10, seed=0)
model.compile(netcore.optimizers.Adam(lr=3e-3), "cross_entropy", ["accuracy"])
model.summary()
model.fit(data.X_train, data.y_train, epochs=15, batch_size=32, verbose=0)
loss, accuracy = model.evaluate(data.X_test, data.y_test)
print(f"ResNet on all ten digits: test accuracy {accuracy:.4f} (loss {loss:.4f})")


# 2. Two inputs, two outputs.
def ink_table(images):
    """The ink of each row and each column of the images: a table of 16 numbers per image."""
    return np.concatenate([images.sum(axis=(2, 3)), images.sum(axis=(1, 3))], axis=1)


image, table = Input((8, 8, 1), name="image"), Input((16,), name="ink")
seen = Flatten()(Conv2D(16, 3, padding="same", activation="relu")(image))
both = Dense(64, activation="relu")(Concatenate()([seen, Dense(16, activation="relu")(table)]))
two = Model(
    inputs=[image, table],
    outputs=[Dense(10, activation="softmax", name="digit")(both), Dense(1, activation="sigmoid", name="high")(both)],
    device=args.device,
    seed=0,
)
two.compile(
    netcore.optimizers.Adam(lr=2e-3),
    loss={"digit": "cross_entropy", "high": "binary_cross_entropy"},
    loss_weights={"digit": 1.0, "high": 0.5},
    metrics={"digit": ["accuracy"], "high": ["accuracy"]},
)
inputs = {"image": data.X_train, "ink": ink_table(data.X_train)}
targets = {"digit": data.y_train, "high": (data.y_train >= 5).astype("float32")[:, None]}
history = two.fit(inputs, targets, epochs=20, batch_size=32, verbose=0)
scores = two.evaluate(
    {"image": data.X_test, "ink": ink_table(data.X_test)},
    {"digit": data.y_test, "high": (data.y_test >= 5).astype("float32")[:, None]},
    return_dict=True,
)
print(f"two inputs, two outputs: history keys {sorted(history.history)}")
print(f"  digit test accuracy {scores['digit_accuracy']:.4f}, 5-or-more test accuracy {scores['high_accuracy']:.4f}")

# 3. Transfer learning: a ResNet trained on the digits 0-4 ...
low_train, low_test = data.y_train < 5, data.y_test < 5
base_model = resnet(5, seed=1)
base_model.compile(netcore.optimizers.Adam(lr=3e-3), "cross_entropy", ["accuracy"])
base_model.fit(data.X_train[low_train], data.y_train[low_train], epochs=20, batch_size=32, verbose=0)
loss, accuracy = base_model.evaluate(data.X_test[low_test], data.y_test[low_test])
print(f"base trained on digits 0-4: test accuracy {accuracy:.4f}")

# ... frozen, its feature layer's output under a new head for the digits 5-9 (the seed notes' code).
for layer in base_model.layers:
    layer.trainable = False
x = base_model.get_layer("features").output
x = Dense(64, activation="relu")(x)
output = Dense(5, activation="softmax")(x)
transfer = Model(inputs=base_model.input, outputs=output, device=args.device, seed=2)
transfer.compile(optimizer=netcore.optimizers.Adam(lr=5e-3), loss="cross_entropy", metrics=["accuracy"])
frozen_before = base_model.get_weights()
high_train, high_test = data.y_train >= 5, data.y_test >= 5
transfer.fit(data.X_train[high_train], data.y_train[high_train] - 5, epochs=20, batch_size=32, verbose=0)
unchanged = all(np.array_equal(a, b) for a, b in zip(frozen_before, base_model.get_weights(), strict=True))
print(f"frozen base unchanged after training the new head: {unchanged}")
loss, accuracy = transfer.evaluate(data.X_test[high_test], data.y_test[high_test] - 5)
print(f"new head on digits 5-9 (frozen ResNet base): test accuracy {accuracy:.4f}")

# Fine-tuning: unfreeze the base, compile again, and train the whole network a little with a small learning rate.
for layer in base_model.layers:
    layer.trainable = True
transfer.compile(optimizer=netcore.optimizers.Adam(lr=5e-4), loss="cross_entropy", metrics=["accuracy"])
transfer.fit(data.X_train[high_train], data.y_train[high_train] - 5, epochs=8, batch_size=32, verbose=0)
loss, accuracy = transfer.evaluate(data.X_test[high_test], data.y_test[high_test] - 5)
print(f"after fine-tuning the whole network: test accuracy {accuracy:.4f}")
