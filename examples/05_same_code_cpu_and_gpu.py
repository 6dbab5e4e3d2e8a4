"""The same training script on every device: only the device name changes.

python examples/05_same_code_cpu_and_gpu.py                 # every device that can run here
python examples/05_same_code_cpu_and_gpu.py --device cupy   # just one
"""

import argparse
import time

import netcore
from netcore import datasets
from netcore.layers import Dense

parser = argparse.ArgumentParser()
parser.add_argument("--device", default=None)
args = parser.parse_args()

names = [args.device] if args.device else [row.name for row in netcore.devices() if row.available]
data = datasets.load("digits", seed=0)
for name in names:
    with netcore.device(name):  # everything created in this block lives on `name`
        model = netcore.Sequential([Dense(128, "relu"), Dense(64, "relu"), Dense(10, "softmax")], input_dim=64, seed=0)
        model.compile("adam", "cross_entropy", ["accuracy"])
        started = time.perf_counter()
        model.fit(data.X_train, data.y_train, epochs=20, batch_size=32, verbose=0)
        seconds = time.perf_counter() - started
        accuracy = model.evaluate(data.X_test, data.y_test, return_dict=True)["accuracy"]
        print(f"{model.device:6} test accuracy {accuracy:.4f}  ({seconds:.2f} s for 20 epochs)")
