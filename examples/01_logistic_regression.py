"""Logistic regression is one neuron: a single sigmoid unit trained with cross-entropy on breast-cancer data.

python examples/01_logistic_regression.py [--device numba]
"""

import argparse

import netcore
from netcore import datasets
from netcore.layers import Dense

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

data = datasets.load("breast_cancer", seed=0)
# One unit, sigmoid output: p(malignant | x) = sigmoid(x . w + b). Zero initial weights are fine for a single unit.
model = netcore.Sequential([Dense(1, "sigmoid")], input_dim=data.n_features, device=args.device, seed=0)
model.compile(netcore.optimizers.SGD(lr=0.1), "binary_crossentropy", ["accuracy", "precision", "recall"])
model.fit(data.X_train, data.y_train.reshape(-1, 1), epochs=30, batch_size=32, verbose=2)
print("test:", model.evaluate(data.X_test, data.y_test.reshape(-1, 1), return_dict=True))
w, b = model.get_weights()
top = sorted(zip(abs(w[:, 0]), data.feature_names, strict=True), reverse=True)[:3]
print("largest weights:", ", ".join(f"{name} ({weight:.2f})" for weight, name in top))
