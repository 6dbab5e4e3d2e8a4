"""Your own images: a folder with one subfolder per class, read as Keras's ``image_dataset_from_directory`` reads it
and decoded with Pillow (the optional extra ``images``), host side.

The data set holds file names and labels, not pixels: its :attr:`ImageDataset.features` is an array-like whose
slices decode their images, so ``fit``, ``evaluate`` and ``predict`` stream it block by block (see
:mod:`netcore.streaming`: a background thread decodes the next block, its images in parallel, while the model trains
on this one), and memory stays bounded whatever the folder's size.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np

from netcore.errors import BackendUnavailableError, ConfigurationError, DataError

#: What Keras reads (GIF: the first frame).
EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
_PILLOW_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
#: Keras's interpolation names Pillow has (Keras's "area" is Pillow's box filter, its "lanczos3" Pillow's Lanczos).
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")


def _pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise BackendUnavailableError(
            f"reading image folders needs Pillow ({exc}); install it with: pip install 'netcore-nn[images]'"
        ) from None
    return Image


def _choice(what: str, value, options):
    if value not in options:
        raise ConfigurationError(f"image_dataset_from_directory {what} must be one of {options}, got {value!r}")
    return value


class ImageFiles:
    """Images as an array-like of shape ``(n, height, width, channels)`` and dtype float32 (pixel values in [0, 255],
    as Keras gives them): slicing decodes the images of the slice, each resized to ``image_size``."""

    def __init__(self, paths, image_size, color_mode, interpolation, crop_to_aspect_ratio, workers=None):
        self.paths = list(paths)
        self.height, self.width = image_size
        self.mode = _PILLOW_MODES[color_mode]
        self.shape = (len(self.paths), self.height, self.width, CHANNELS[color_mode])
        self.dtype = np.dtype("float32")
        self.interpolation, self.crop = interpolation, bool(crop_to_aspect_ratio)
        self.workers = workers or min(8, os.cpu_count() or 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._decode(self.paths[key])
        paths = self.paths[key]
        out = np.empty((len(paths), *self.shape[1:]), self.dtype)
        if len(paths) < 2 * self.workers:
            for i, path in enumerate(paths):
                out[i] = self._decode(path)
            return out
        with concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="netcore-decode") as pool:
            for i, image in enumerate(pool.map(self._decode, paths)):  # Pillow decodes without the GIL
                out[i] = image
        return out

    def _decode(self, path: str) -> np.ndarray:
        Image = _pillow()
        resample = {
            "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST,
            "bicubic": Image.Resampling.BICUBIC,
            "area": Image.Resampling.BOX,
            "lanczos3": Image.Resampling.LANCZOS,
            "lanczos5": Image.Resampling.LANCZOS,
        }[self.interpolation]
        try:
            with Image.open(path) as image:
                image.seek(0)  # an animated GIF's first frame
                image = image.convert(self.mode)
                if self.crop:
                    image = image.crop(_centred_box(image.size, self.width / self.height))
                if image.size != (self.width, self.height):
                    image = image.resize((self.width, self.height), resample)
                pixels = np.asarray(image, dtype=self.dtype)
        except (OSError, ValueError, SyntaxError) as exc:  # what Pillow raises for files it cannot decode
            raise DataError(f"{path} cannot be decoded as an image ({type(exc).__name__}: {exc})") from None
        return pixels.reshape(self.shape[1:])


def _centred_box(size, aspect: float):
    """The largest box of ``aspect`` (width / height) centred in an image of ``size``."""
    width, height = size
    if width / height > aspect:
        crop = round(height * aspect)
        left = (width - crop) // 2
        return left, 0, left + crop, height
    crop = round(width / aspect)
    top = (height - crop) // 2
    return 0, top, width, top + crop


class ImageDataset:
    """What :func:`image_dataset_from_directory` returns: ``fit(dataset, ...)``, ``evaluate(dataset)`` and
    ``predict(dataset)`` take it whole (its images as :attr:`features`, its labels as :attr:`targets`; ``fit`` uses
    its ``batch_size`` unless given one). Iterating gives ``(images, labels)`` batches as NumPy arrays (images alone
    without labels), to look at."""

    def __init__(self, files: ImageFiles, targets, class_names, batch_size: int):
        self.features, self.targets = files, targets
        self.class_names, self.batch_size = list(class_names), batch_size

    @property
    def file_paths(self) -> list[str]:
        return list(self.features.paths)

    def __len__(self) -> int:
        """The number of batches (Keras's cardinality)."""
        return -(-len(self.features) // self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.features), self.batch_size):
            images = self.features[start : start + self.batch_size]
            yield images if self.targets is None else (images, self.targets[start : start + self.batch_size])

    def __repr__(self) -> str:
        shape = (None, *self.features.shape[1:])
        return f"ImageDataset({len(self.features)} images of shape {shape}, classes {self.class_names})"


def _listing(directory: str, labels, class_names, follow_links: bool) -> tuple[list[str], list[int], list[str]]:
    """The image files (each class folder's in alphanumeric order, class by class) and their class numbers."""
    if not os.path.isdir(directory):
        raise DataError(f"{directory} is not a folder")
    allowed = ", ".join(EXTENSIONS)

    def images_in(folder: str) -> list[str]:
        found = []
        for root, folders, files in os.walk(folder, followlinks=follow_links):
            folders.sort()
            found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(EXTENSIONS)]
        return found

    if labels != "inferred":
        paths = images_in(directory)
        if not paths:
            raise DataError(f"no images in {directory} (files ending {allowed}, in it or its subfolders)")
        if labels is None:
            return paths, [], []
        labels = [int(label) for label in labels]
        if len(labels) != len(paths):
            raise ConfigurationError(
                f"labels has {len(labels)} entries for the {len(paths)} images of {directory} (sorted by path)"
            )
        return paths, labels, [str(k) for k in sorted(set(labels))]
    folders = sorted(f for f in os.listdir(directory) if os.path.isdir(os.path.join(directory, f)))
    if class_names is not None:
        missing = [name for name in class_names if name not in folders]
        if missing:
            raise ConfigurationError(f"class_names {missing} are not folders of {directory} (those are {folders})")
        folders = list(class_names)
    if not folders:
        raise DataError(f"{directory} has no class folders: put each class's images in a folder named after it")
    paths, numbers = [], []
    for number, name in enumerate(folders):
        found = images_in(os.path.join(directory, name))
        if not found:
            raise DataError(
                f"the class folder {os.path.join(directory, name)} holds no images (files ending {allowed})"
            )
        paths += found
        numbers += [number] * len(found)
    return paths, numbers, folders


def _encode(numbers: list[int], label_mode, classes: int):
    if label_mode is None or not numbers:
        return None
    labels = np.asarray(numbers, dtype=np.int64)
    if label_mode == "int":
        return labels
    if label_mode == "binary":
        if classes != 2:
            raise ConfigurationError(f'label_mode="binary" needs exactly 2 classes, found {classes}')
        return labels.astype(np.float32).reshape(-1, 1)
    out = np.zeros((len(labels), classes), np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


def image_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    color_mode="rgb",
    batch_size=32,
    image_size=(256, 256),
    shuffle=True,
    seed=None,
    validation_split=None,
    subset=None,
    interpolation="bilinear",
    follow_links=False,
    crop_to_aspect_ratio=False,
):
    """Images in class folders (``directory/cat/*.jpg``, ``directory/dog/*.png``) as an :class:`ImageDataset`, with
    Keras's arguments and meanings.

    ``labels="inferred"`` numbers the class folders in alphanumeric order (or as ``class_names`` lists them);
    ``labels`` may also be a list of class numbers for the images of ``directory`` sorted by path, or None (no
    labels: for ``predict``). ``label_mode``: ``"int"``, ``"categorical"`` (one-hot), ``"binary"`` (two classes, a
    column of 0/1) or None. ``color_mode``: ``"grayscale"``, ``"rgb"`` or ``"rgba"`` (1, 3 or 4 channels).
    ``image_size=(height, width)``: every image is resized to it (``interpolation``; ``crop_to_aspect_ratio`` first
    crops the largest centred box of that aspect). Pixels are float32 in [0, 255]. ``shuffle`` mixes the files once,
    with ``seed``; ``validation_split`` keeps its fraction (the last files after that shuffle) for validation:
    ``subset="training"``, ``"validation"`` or ``"both"`` (a pair). The same seed gives the same split. JPEG, PNG,
    BMP and GIF (its first frame) are read; a file that does not decode raises :class:`DataError` naming it when it
    is read.
    """
    _pillow()
    directory = os.fspath(directory)
    if labels != "inferred" and labels is not None and isinstance(labels, str):
        raise ConfigurationError(f'labels must be "inferred", None or a list of class numbers, got {labels!r}')
    label_mode = None if labels is None else _choice("label_mode", label_mode, ("int", "categorical", "binary", None))
    _choice("color_mode", color_mode, tuple(CHANNELS))
    _choice("interpolation", interpolation, INTERPOLATIONS)
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ConfigurationError(f"image_size must be (height, width), got {image_size!r}") from None
    if height < 1 or width < 1:
        raise ConfigurationError(f"image_size must be positive, got {image_size!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a positive integer, got {batch_size!r}")
    if validation_split is not None:
        if not 0 < validation_split < 1:
            raise ConfigurationError(f"validation_split must be in (0, 1), got {validation_split!r}")
        _choice("subset", subset, ("training", "validation", "both"))
        if shuffle and seed is None:
            raise ConfigurationError("validation_split with shuffle=True needs a seed, so both subsets split alike")
    elif subset is not None:
        raise ConfigurationError("subset needs a validation_split")
    paths, numbers, names = _listing(directory, labels, class_names, follow_links)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(paths))
        paths = [paths[i] for i in order]
        numbers = [numbers[i] for i in order] if numbers else numbers
    targets = _encode(numbers, label_mode, len(names))

    def dataset(part: slice) -> ImageDataset:
        files = ImageFiles(paths[part], (height, width), color_mode, interpolation, crop_to_aspect_ratio)
        return ImageDataset(files, None if targets is None else targets[part], names, batch_size)

    if validation_split is None:
        return dataset(slice(None))
    held = int(validation_split * len(paths))
    if held == 0 or held == len(paths):
        raise ConfigurationError(f"validation_split={validation_split} of {len(paths)} images leaves a side empty")
    training, validation = dataset(slice(0, len(paths) - held)), dataset(slice(len(paths) - held, None))
    return {"training": training, "validation": validation, "both": (training, validation)}[subset]
