"""A shallow network (one hidden tanh layer) separates the two moons; the decision boundary shows how.

python examples/02_shallow_network_moons.py [--device numba] [--out moons.png]
"""

import argparse

import netcore
from netcore import datasets, plot
from netcore.layers import Dense

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default="moons_boundary.png")
args = parser.parse_args()

data = datasets.load("moons", seed=0)
model = netcore.Sequential([Dense(8, "tanh"), Dense(2, "softmax")], input_dim=2, device=args.device, seed=0)
model.compile(netcore.optimizers.Adam(lr=0.02), "cross_entropy", ["accuracy"])
model.fit(data.X_train, data.y_train, epochs=40, batch_size=32, verbose=0)
print("test:", model.evaluate(data.X_test, data.y_test, return_dict=True))
plot.decision_boundary(model, data.X_test, data.y_test, args.out, title="8 tanh units on moons")
print("decision boundary written to", args.out)
