"""A pretrained base and the files users already have: the seed notes' transfer-learning code with only its imports
changed, on a VGG16 without its top whose weights come from a file in the layout of Keras's keras.applications
weight files, fine-tuned on the digit images resized to 32x32x3; then the model goes to Keras as a .keras file.

Nothing is downloaded: the weights file is written here (by Keras when it is installed, in the exact layout of the
ImageNet files; else by netcore in Keras 3's layout), with random weights, so the base is pretrained only in form.
With Keras's ImageNet file in ~/.keras/models, weights="imagenet" uses it instead.

python examples/09_pretrained.py [--device numba]
"""

import argparse
import os
import tempfile

import numpy as np
from PIL import Image

import netcore
from netcore.applications import VGG16
from netcore.applications.vgg16 import preprocess_input
from netcore.layers import Dense, Flatten
from netcore.models import Model, load_model
from netcore.optimizers import Adam
from netcore.utils import to_categorical

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
args = parser.parse_args()
netcore.set_device(args.device)
folder = tempfile.mkdtemp()


def weights_file() -> str:
    """VGG16's weights without the top, as a file of the keras.applications layout (random values)."""
    path = os.path.join(folder, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    try:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import h5py
        import keras
        from keras.src.legacy.saving import legacy_h5_format

        keras_base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
        with h5py.File(path, "w") as handle:
            legacy_h5_format.save_weights_to_hdf5_group(handle, keras_base)
        print(f"Keras wrote {os.path.basename(path)} (keras.applications' layout); Keras counts "
              f"{keras_base.count_params():,} parameters")  # fmt: skip
        return path
    except ImportError:
        path = os.path.join(folder, "vgg16_notop.weights.h5")
        VGG16(weights=None, include_top=False, input_shape=(32, 32, 3), seed=0).save_weights(path)
        print(f"netcore wrote {os.path.basename(path)} (Keras 3's layout; Keras is not installed)")
        return path


def digits_as_photos(rows: int = 900):
    """``rows`` of the 8x8 digit images as 32x32 RGB pictures in [0, 255], split 80/20 (a few hundred keep the
    example quick on a CPU: every step runs all of VGG16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    digits.images, digits.target = digits.images[:rows], digits.target[:rows]
    pictures = np.stack(
        [np.asarray(Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((32, 32))) for im in digits.images]
    )
    pictures = np.repeat(pictures[..., None], 3, axis=-1).astype("float32")
    return train_test_split(pictures, digits.target, test_size=0.2, random_state=0, stratify=digits.target)


X_train, X_test, y_train, y_test = digits_as_photos()
X_train, X_test = preprocess_input(X_train), preprocess_input(X_test)

# The seed notes' code, with weights from the file (weights="imagenet" would read Keras's ImageNet file).
base_model = VGG16(weights=weights_file(), include_top=False, input_shape=(32, 32, 3))
for layer in base_model.layers:
    layer.trainable = False
x = Flatten()(base_model.output)
x = Dense(512, activation="relu")(x)
output = Dense(10, activation="softmax")(x)
model = Model(inputs=base_model.input, outputs=output)
model.compile(optimizer=Adam(lr=0.001), loss="categorical_crossentropy", metrics=["accuracy"])
model.summary()

frozen = base_model.get_weights()
model.fit(X_train, to_categorical(y_train), epochs=5, batch_size=32, verbose=0)
unchanged = all(np.array_equal(a, b) for a, b in zip(frozen, base_model.get_weights(), strict=True))
print(f"frozen base unchanged after training the head: {unchanged}")
loss, accuracy = model.evaluate(X_test, to_categorical(y_test))
print(f"new head on a frozen VGG16 base: test accuracy {accuracy:.4f}")

# Fine-tuning: the last convolutional block trains too, slowly.
for layer in base_model.layers:
    layer.trainable = layer.name.startswith("block5")
model.compile(optimizer=Adam(lr=1e-4), loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, to_categorical(y_train), epochs=3, batch_size=32, verbose=0)
loss, accuracy = model.evaluate(X_test, to_categorical(y_test))
print(f"after fine-tuning block 5: test accuracy {accuracy:.4f}")

# To Keras and back: a .keras archive that keras.models.load_model reads.
path = os.path.join(folder, "digits_vgg16.keras")
model.save(path)
again = load_model(path)
same = np.allclose(again.predict(X_test[:20]), model.predict(X_test[:20]), rtol=1e-5, atol=1e-6)
print(f"saved as {os.path.basename(path)}; read back, it predicts the same: {same}")
