"""Recurrent networks: the vanishing gradient on the adding problem (a SimpleRNN stalls where LSTM and GRU learn),
a one-step forecast of noisy sines (with a plot), and an LSTM reading the digits row by row.

python examples/07_rnn.py [--device numba] [--out sine_forecast.png]
"""

import argparse
import time

import numpy as np

import netcore
from netcore import datasets, plot
from netcore.layers import GRU, LSTM, Dense, SimpleRNN

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default="sine_forecast.png")
args = parser.parse_args()

# 1. The adding problem: sum the two marked values of a 75-step sequence. Guessing 1 scores 1/6; the first marked
#    value must be carried across about 40 steps, which a SimpleRNN's vanishing gradient does not allow.
data = datasets.load("adding", length=75, samples=5000, seed=0)
print(f"adding problem, 75 steps: guessing 1 scores a mean squared error of {np.mean((data.y_test - 1) ** 2):.4f}")
for layer in (SimpleRNN, LSTM, GRU):
    model = netcore.Sequential([layer(32), Dense(1)], input_shape=data.input_shape, device=args.device, seed=0)
    model.compile(netcore.optimizers.Adam(lr=1e-2, global_clipnorm=1.0), "mse")  # clipping: recurrent nets need it
    started = time.perf_counter()
    history = model.fit(data.X_train, data.y_train, epochs=12, batch_size=64, verbose=0)
    seconds = time.perf_counter() - started
    curve = " ".join(f"{loss:.3f}" for loss in history.history["loss"])
    mse = model.evaluate(data.X_test, data.y_test)
    print(f"  {layer.__name__:9} test MSE {mse:.4f} ({seconds:.1f} s; training MSE by epoch: {curve})")

# 2. Forecast a noisy sine one step ahead.
sines = datasets.load("sine", length=40, samples=1500, seed=1)
model = netcore.Sequential([GRU(16), Dense(1)], input_shape=sines.input_shape, device=args.device, seed=0)
model.compile(netcore.optimizers.Adam(lr=1e-2), "mse", ["r2"])
model.fit(sines.X_train, sines.y_train, epochs=15, batch_size=32, verbose=0)
scores = model.evaluate(sines.X_test, sines.y_test, return_dict=True)
print(f"sine forecast: test MSE {scores['loss']:.4f}, R^2 {scores['r2']:.3f} (the inputs' noise has variance 0.01)")
plt = plot.load_pyplot()
fig, ax = plt.subplots(figsize=(8, 3.5))
example = sines.X_test[0, :, 0]
ax.plot(range(len(example)), example, ".-", label="noisy input")
ax.plot([len(example)], [sines.y_test[0]], "go", label="next value of the sine")
ax.plot([len(example)], model.predict(sines.X_test[:1])[0], "rx", markersize=10, label="GRU forecast")
ax.set_xlabel("step")
ax.legend()
fig.tight_layout()
fig.savefig(args.out, dpi=100)
plt.close(fig)
print("forecast plot written to", args.out)

# 3. Classification: an LSTM reads each digit row by row (8 steps of 8 pixels).
digits = datasets.load("digits", as_sequences=True, seed=0)
model = netcore.Sequential([LSTM(64), Dense(10, "softmax")], input_shape=(8, 8), device=args.device, seed=0)
model.compile(netcore.optimizers.Adam(lr=3e-3), "cross_entropy", ["accuracy"])
model.fit(digits.X_train, digits.y_train, epochs=25, batch_size=32, verbose=0)
print(f"LSTM on the digits row by row: test accuracy {model.evaluate(digits.X_test, digits.y_test)[1]:.4f}")
