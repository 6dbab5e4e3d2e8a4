"""A small convolutional network on the digit images, then transfer learning: train on the digits 0-4, freeze
the convolutional base, put a new head on it and train the head on the digits 5-9.

python examples/06_cnn_digits.py [--device numba]
"""

import argparse

import numpy as np

import netcore
from netcore import datasets
from netcore.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D, RandomTranslation

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

data = datasets.load("digits", seed=0, as_images=True)  # (n, 8, 8, 1), pixels in [0, 1]


def convolutional_base():
    return [
        RandomTranslation(0.1, 0.1, fill_mode="constant"),  # shifts of up to a pixel, in training only
        Conv2D(16, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Conv2D(32, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
    ]


def head(classes):
    return [Dense(64, "relu"), Dropout(0.2), Dense(classes, "softmax")]


# 1. A CNN on all ten digits.
model = netcore.Sequential([*convolutional_base(), *head(10)], input_shape=(8, 8, 1), device=args.device, seed=0)
model.compile(netcore.optimizers.Adam(lr=2e-3), "cross_entropy", ["accuracy"])
model.summary()
model.fit(data.X_train, data.y_train, epochs=40, batch_size=32, verbose=0)
print(
    f"CNN on all ten digits: test accuracy {model.evaluate(data.X_test, data.y_test, return_dict=True)['accuracy']:.4f}"
)

# 2. Transfer learning: a base trained on 0-4 ...
low_train, low_test = data.y_train < 5, data.y_test < 5
base = netcore.Sequential([*convolutional_base(), *head(5)], input_shape=(8, 8, 1), device=args.device, seed=1)
base.compile(netcore.optimizers.Adam(lr=2e-3), "cross_entropy", ["accuracy"])
base.fit(data.X_train[low_train], data.y_train[low_train], epochs=25, batch_size=32, verbose=0)
score = base.evaluate(data.X_test[low_test], data.y_test[low_test], return_dict=True)["accuracy"]
print(f"base trained on digits 0-4: test accuracy {score:.4f}")

# ... its convolutional layers frozen, with a new head for 5-9 (the layers keep their trained weights).
feature_layers = base.layers[:-3]
for layer in feature_layers:
    layer.trainable = False
transfer = netcore.Sequential([*feature_layers, *head(5)], input_shape=(8, 8, 1), device=args.device, seed=2)
transfer.compile(netcore.optimizers.Adam(lr=5e-3), "cross_entropy", ["accuracy"])
transfer.summary()
frozen_before = transfer.get_weights()[:-4]  # the two convolutions' kernels and biases
high_train, high_test = data.y_train >= 5, data.y_test >= 5
transfer.fit(data.X_train[high_train], data.y_train[high_train] - 5, epochs=20, batch_size=32, verbose=0)
unchanged = all(np.array_equal(a, b) for a, b in zip(frozen_before, transfer.get_weights()[:-4], strict=True))
print(f"frozen base unchanged after training the head: {unchanged}")
score = transfer.evaluate(data.X_test[high_test], data.y_test[high_test] - 5, return_dict=True)["accuracy"]
print(f"new head on digits 5-9 (frozen base): test accuracy {score:.4f}")

# Fine-tuning: unfreeze, compile again, and train everything a little with a small learning rate.
for layer in feature_layers:
    layer.trainable = True
transfer.compile(netcore.optimizers.Adam(lr=3e-4), "cross_entropy", ["accuracy"])
transfer.fit(data.X_train[high_train], data.y_train[high_train] - 5, epochs=5, batch_size=32, verbose=0)
score = transfer.evaluate(data.X_test[high_test], data.y_test[high_test] - 5, return_dict=True)["accuracy"]
print(f"after fine-tuning the whole network: test accuracy {score:.4f}")
