"""image_dataset_from_directory: class folders and labels, splits, colour modes, sizes, formats, files that do not
decode, empty folders, data sets that fit/evaluate/predict take whole, and bounded memory on 20,000 images."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import netcore
from netcore.layers import Conv2D, Dense, Flatten, MaxPooling2D, Rescaling
from netcore.utils import image_dataset_from_directory

Image = pytest.importorskip("PIL.Image")


def write_digits(folder, per_class=12, classes=3, fmt="png"):
    """The digit images (8x8, grey) as files, one folder per class; returns (pixels, label) by path."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    written = {}
    for label in range(classes):
        os.makedirs(folder / f"class_{label}", exist_ok=True)
        for k, image in enumerate(digits.images[digits.target == label][:per_class]):
            pixels = (image * 255 / 16).astype(np.uint8)
            path = folder / f"class_{label}" / f"{k:03d}.{fmt}"
            Image.fromarray(pixels).save(path)
            written[str(path)] = (pixels, label)
    return written


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    return root, write_digits(root)


def test_classes_come_from_the_folders_and_pixels_as_stored(folder):
    root, written = folder
    data = image_dataset_from_directory(root, image_size=(8, 8), color_mode="grayscale", shuffle=False)
    assert data.class_names == ["class_0", "class_1", "class_2"] and len(data.features) == 36 and len(data) == 2
    assert data.features.shape == (36, 8, 8, 1) and data.features.dtype == np.float32
    images = data.features[0:36]
    for path, image, label in zip(data.file_paths, images, data.targets, strict=True):
        pixels, expected = written[path]
        np.testing.assert_array_equal(image[..., 0], pixels)  # [0, 255], untouched at the stored size
        assert label == expected
    batches = list(data)
    assert [len(b[0]) for b in batches] == [32, 4] and batches[1][1].tolist() == [2, 2, 2, 2]


@pytest.mark.parametrize(
    ("label_mode", "shape", "dtype"), [("int", (36,), np.int64), ("categorical", (36, 3), np.float32)]
)
def test_label_modes(folder, label_mode, shape, dtype):
    data = image_dataset_from_directory(folder[0], label_mode=label_mode, image_size=(8, 8), shuffle=False)
    assert data.targets.shape == shape and data.targets.dtype == dtype
    if label_mode == "categorical":
        assert data.targets.sum(axis=1).tolist() == [1.0] * 36


def test_binary_labels_none_and_chosen_class_names(folder):
    root, _ = folder
    binary = image_dataset_from_directory(root, label_mode="binary", class_names=["class_2", "class_0"], shuffle=False)
    assert binary.class_names == ["class_2", "class_0"] and binary.targets.shape == (24, 1)
    assert binary.targets[:12].sum() == 0 and binary.targets[12:].sum() == 12  # class_2 is 0, class_0 is 1
    with pytest.raises(netcore.ConfigurationError, match="exactly 2 classes, found 3"):
        image_dataset_from_directory(root, label_mode="binary")
    unlabelled = image_dataset_from_directory(root, labels=None, image_size=(8, 8))
    assert unlabelled.targets is None and next(iter(unlabelled)).shape == (32, 8, 8, 3)


def test_the_same_seed_gives_the_same_split_and_the_subsets_share_nothing(folder):
    root, _ = folder
    options = dict(validation_split=0.25, seed=7, image_size=(8, 8))
    train, val = image_dataset_from_directory(root, subset="both", **options)
    again = image_dataset_from_directory(root, subset="validation", **options)
    assert again.file_paths == val.file_paths and len(val.features) == 9 and len(train.features) == 27
    assert not set(train.file_paths) & set(val.file_paths)
    other = image_dataset_from_directory(root, subset="validation", **{**options, "seed": 8})
    assert other.file_paths != val.file_paths
    with pytest.raises(netcore.ConfigurationError, match="needs a seed"):
        image_dataset_from_directory(root, validation_split=0.2, subset="training")


def test_colour_modes_sizes_and_crops(folder):
    root, written = folder
    rgb = image_dataset_from_directory(root, image_size=(8, 8), shuffle=False)
    image = rgb.features[0]
    assert image.shape == (8, 8, 3) and np.array_equal(image[..., 0], image[..., 2])  # grey in three channels
    rgba = image_dataset_from_directory(root, image_size=(8, 8), color_mode="rgba", shuffle=False)
    assert rgba.features[0].shape == (8, 8, 4) and np.all(rgba.features[0][..., 3] == 255)
    resized = image_dataset_from_directory(root, image_size=(16, 12), interpolation="nearest", shuffle=False)
    assert resized.features[0:2].shape == (2, 16, 12, 3)
    cropped = image_dataset_from_directory(root, image_size=(4, 8), crop_to_aspect_ratio=True, shuffle=False)
    pixels = written[cropped.file_paths[0]][0]
    np.testing.assert_array_equal(cropped.features[0][..., 0], pixels[2:6])  # the centred 4x8 band, no resampling


@pytest.mark.parametrize("fmt", ["jpeg", "bmp", "gif"])
def test_jpeg_bmp_and_gif_decode(tmp_path, fmt):
    written = write_digits(tmp_path, per_class=2, classes=2, fmt=fmt)
    data = image_dataset_from_directory(tmp_path, color_mode="grayscale", image_size=(8, 8), shuffle=False)
    for path, image in zip(data.file_paths, data.features[0:4], strict=True):
        tolerance = 40 if fmt == "jpeg" else 0  # JPEG is lossy
        assert np.abs(image[..., 0] - written[path][0]).max() <= tolerance


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    os.makedirs(tmp_path / "a")
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a" / "x.gif", save_all=True, append_images=frames[1:])
    data = image_dataset_from_directory(tmp_path, color_mode="grayscale", image_size=(4, 4))
    assert np.all(data.features[0] == 10)


def test_a_file_that_does_not_decode_is_named_and_the_model_is_left_as_it_was(folder):
    root, _ = folder
    (root / "class_1" / "broken.png").write_bytes(b"not an image at all")
    data = image_dataset_from_directory(root, image_size=(8, 8), color_mode="grayscale", seed=0)
    model = netcore.Sequential([Rescaling(1 / 255), Flatten(), Dense(3, "softmax")], input_shape=(8, 8, 1), seed=0)
    model.compile("adam", "cross_entropy")
    before = model.get_weights()
    with pytest.raises(netcore.DataError, match=r"broken\.png cannot be decoded"):
        model.fit(data, epochs=2, batch_size=4, verbose=0)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert model.optimizer.step_count == 0


def test_empty_folders_say_so(tmp_path):
    with pytest.raises(netcore.DataError, match="has no class folders"):
        image_dataset_from_directory(tmp_path)
    os.makedirs(tmp_path / "cats")
    os.makedirs(tmp_path / "dogs")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "cats" / "a.png")
    (tmp_path / "dogs" / "notes.txt").write_text("no images here")
    with pytest.raises(netcore.DataError, match=r"class folder .*dogs holds no images"):
        image_dataset_from_directory(tmp_path)
    with pytest.raises(netcore.DataError, match="is not a folder"):
        image_dataset_from_directory(tmp_path / "missing")


def test_fit_evaluate_and_predict_take_the_data_sets_whole(folder):
    root, _ = folder
    train, val = image_dataset_from_directory(
        root, image_size=(8, 8), color_mode="grayscale", batch_size=6, validation_split=0.25, subset="both", seed=3
    )
    model = netcore.Sequential(
        [Rescaling(1 / 255), Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(2), Flatten(),
         Dense(3, "softmax")],
        input_shape=(8, 8, 1),
        device="numba",
        seed=0,
    )  # fmt: skip
    model.compile("adam", "cross_entropy", ["accuracy"])
    history = model.fit(train, epochs=3, validation_data=val, verbose=0)
    assert model.optimizer.step_count == 3 * -(-27 // 6)  # the data set's batch size
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    loss, accuracy = model.evaluate(val)
    assert accuracy == pytest.approx(history.history["val_accuracy"][-1])
    in_memory = val.features[0 : len(val.features)]
    np.testing.assert_allclose(model.predict(val), model.predict(in_memory), rtol=1e-6)
    with pytest.raises(netcore.ConfigurationError, match="carries its own targets"):
        model.evaluate(val, val.targets)


def test_memory_stays_bounded_on_twenty_thousand_images(tmp_path):
    """20,000 images decoded to 64x64 RGB take 938 MiB at once; streamed, the process's anonymous memory grows by
    a few blocks (streaming.BLOCK_BYTES each) whatever the folder's size (measured in a fresh process)."""
    code = textwrap.dedent(
        f"""
        import os, numpy as np
        from PIL import Image
        import netcore
        from benchmarks.streaming import PeakAnonymous
        from netcore.layers import Dense, Flatten, Rescaling
        from netcore.utils import image_dataset_from_directory
        root = {str(tmp_path)!r}
        rng = np.random.default_rng(0)
        for label in range(2):
            os.makedirs(os.path.join(root, str(label)))
            for k in range(10_000):
                pixels = rng.integers(0, 256, (6, 6), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(root, str(label), f"{{k}}.png"))
        data = image_dataset_from_directory(root, image_size=(64, 64), seed=0)
        model = netcore.Sequential([Rescaling(1 / 255), Flatten(), Dense(2, "softmax")], input_shape=(64, 64, 3))
        model.compile("sgd", "cross_entropy")
        baseline = PeakAnonymous.now()
        with PeakAnonymous() as memory:
            model.fit(data, epochs=1, batch_size=256, verbose=0)
        print((memory.peak - baseline) / 2**20)
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    growth = float(result.stdout.split()[-1])
    whole = 20_000 * 64 * 64 * 3 * 4 / 2**20
    assert growth < 0.35 * whole, f"streaming 20,000 images grew the process by {growth:.0f} of {whole:.0f} MiB"


def test_rescaling_has_the_gradient_of_its_scale(backend):
    model = netcore.Sequential(
        [Dense(3, "tanh"), Rescaling(0.25, offset=2.0), Dense(2)],
        input_shape=(4,),
        device=backend.name,
        dtype="float64",
    )
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    netcore.check_gradients(model, rng.standard_normal((5, 4)), rng.standard_normal((5, 2))).raise_if_above(1e-7)
    np.testing.assert_allclose(
        netcore.Sequential([Rescaling(1 / 255, offset=-1)], input_shape=(2,)).predict(np.array([[0, 255.0]])),
        [[-1, 0]],
    )


def test_the_command_line_trains_on_a_folder_and_evaluates_what_it_held_out(folder, tmp_path, capsys):
    import json

    from netcore.cli import main

    root, _ = folder
    saved = tmp_path / "m.ncz"
    arguments = ["train", "--images", str(root), "--image-size", "8,8", "--color-mode", "grayscale", "--conv", "4",
                 "--epochs", "2", "--batch-size", "8", "--augment", "--save", str(saved), "--json"]  # fmt: skip
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == ["class_0", "class_1", "class_2"] and result["input_shape"] == [8, 8, 1]
    assert result["train_images"] + result["validation_images"] == 36 and result["augment"]
    assert main(["evaluate", str(saved), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["rows"] == result["validation_images"]
    assert evaluated["test_accuracy"] == pytest.approx(result["val_accuracy"])
    assert main(["train", "--images", str(tmp_path / "nowhere"), "--json"]) == 2
