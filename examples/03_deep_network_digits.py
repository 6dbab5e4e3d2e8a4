"""A deep network on handwritten digits with dropout, batch normalisation, L2 and early stopping.

python examples/03_deep_network_digits.py [--device numba] [--out digits_history.png]
"""

import argparse

import netcore
from netcore import callbacks, datasets, plot
from netcore.layers import Activation, BatchNorm, Dense, Dropout
from netcore.regularizers import L2

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default="digits_history.png")
args = parser.parse_args()

data = datasets.load("digits", validation_size=0.1, seed=0)
layers = []
for width in (256, 128, 64):
    # No bias before batch norm: BN's beta plays that role.
    layers += [Dense(width, use_bias=False, kernel_regularizer=L2(1e-5)), BatchNorm(), Activation("relu"), Dropout(0.2)]
layers.append(Dense(10, "softmax"))
model = netcore.Sequential(layers, input_dim=data.n_features, device=args.device, seed=0)
model.compile(netcore.optimizers.AdamW(lr=2e-3), "cross_entropy", ["accuracy", "top_3_accuracy"])
model.summary()
history = model.fit(
    data.X_train,
    data.y_train,
    epochs=100,
    batch_size=64,
    validation_data=(data.X_val, data.y_val),
    verbose=2,
    callbacks=[callbacks.EarlyStopping(monitor="val_loss", patience=8), callbacks.ReduceLROnPlateau(patience=3)],
)
print(f"stopped after {len(history.epoch)} epochs; test:", model.evaluate(data.X_test, data.y_test, return_dict=True))
plot.history(history, args.out)
print("learning curves written to", args.out)
