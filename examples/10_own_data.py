"""Your own data: a folder of images sorted into class folders, and sentences.

1. The digit images written as PNG files, one folder per digit (as photos you sorted would be), read with
   image_dataset_from_directory and learned by a small CNN straight from the files.
2. Generated movie-review-like sentences whose label is decided by their words: a Tokenizer numbers the words,
   pad_sequences makes the lists one array, and an Embedding + LSTM reads them (padding masked out).

python examples/10_own_data.py [--device numba]
"""

import argparse
import os
import tempfile

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import netcore
from netcore.layers import LSTM, Conv2D, Dense, Embedding, Flatten, MaxPooling2D, Rescaling
from netcore.utils import Tokenizer, image_dataset_from_directory, pad_sequences

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
args = parser.parse_args()


# 1. Images in class folders.
def write_folder(root, images, labels):
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        os.makedirs(os.path.join(root, f"digit_{label}"), exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(os.path.join(root, f"digit_{label}", f"{k}.png"))


digits = load_digits()
train_images, test_images, train_labels, test_labels = train_test_split(
    digits.images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
)
with tempfile.TemporaryDirectory() as folder:
    write_folder(os.path.join(folder, "train"), train_images, train_labels)
    write_folder(os.path.join(folder, "test"), test_images, test_labels)
    options = dict(image_size=(16, 16), color_mode="grayscale", batch_size=32)
    train, validation = image_dataset_from_directory(
        os.path.join(folder, "train"), validation_split=0.1, subset="both", seed=0, **options
    )
    test = image_dataset_from_directory(os.path.join(folder, "test"), shuffle=False, **options)
    print(f"{len(train.features)} training images, {len(validation.features)} held out, classes {train.class_names}")
    cnn = netcore.Sequential(
        [
            Rescaling(1 / 255),  # the files hold 0..255
            Conv2D(16, 3, padding="same", activation="relu"),
            MaxPooling2D(2),
            Conv2D(32, 3, padding="same", activation="relu"),
            MaxPooling2D(2),
            Flatten(),
            Dense(64, "relu"),
            Dense(len(train.class_names), "softmax"),
        ],
        input_shape=(16, 16, 1),
        device=args.device,
        seed=0,
    )
    cnn.compile(netcore.optimizers.Adam(lr=2e-3), "cross_entropy", ["accuracy"])
    cnn.fit(train, epochs=12, validation_data=validation, verbose=0)
    loss, accuracy = cnn.evaluate(test)
    print(f"CNN trained from the image folder: test accuracy {accuracy:.4f}")

# 2. Sentences.
POSITIVE = ["good", "great", "excellent", "wonderful", "loved", "brilliant", "enjoyable", "superb"]
NEGATIVE = ["bad", "terrible", "awful", "boring", "hated", "dull", "weak", "poor"]
NEUTRAL = ["the", "movie", "film", "plot", "actors", "story", "was", "is", "it", "this", "and", "a", "an", "i", "we",
           "they", "really", "quite", "very", "some", "of", "in", "with", "director", "scenes", "music"]  # fmt: skip
rng = np.random.default_rng(0)


def sentence():
    """Neutral words around one or three opinion words; the majority of the opinions is the label."""
    opinions = rng.choice([1, 3])
    positive = rng.integers(0, opinions + 1)
    words = list(rng.choice(NEUTRAL, rng.integers(4, 14)))
    for k in range(opinions):
        words.insert(rng.integers(0, len(words) + 1), rng.choice(POSITIVE if k < positive else NEGATIVE))
    return " ".join(words).capitalize() + ".", int(2 * positive > opinions)


texts, labels = zip(*(sentence() for _ in range(3000)), strict=True)
labels = np.array(labels)
print(f'a sentence: "{texts[0]}" -> {"positive" if labels[0] else "negative"}')
tokenizer = Tokenizer(oov_token="<unknown>")
tokenizer.fit_on_texts(texts[:2400])
X = pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=20)  # zeros in front: the padding
print(f"{len(tokenizer.word_index)} words; padded to {X.shape}")
reader = netcore.Sequential(
    [
        Embedding(len(tokenizer.word_index) + 1, 16, mask_zero=True),  # index 0 is padding: masked out
        LSTM(32),
        Dense(1, "sigmoid"),
    ],
    input_shape=(20,),
    device=args.device,
    seed=0,
)
reader.compile(netcore.optimizers.Adam(lr=5e-3), "binary_cross_entropy", ["accuracy"])
reader.fit(X[:2400], labels[:2400, None], epochs=8, batch_size=32, validation_split=0.1, verbose=0)
loss, accuracy = reader.evaluate(X[2400:], labels[2400:, None])
print(f"Embedding + LSTM on the sentences: test accuracy {accuracy:.4f}")
