"""``VGG16`` and its ``preprocess_input`` under Keras's module name (``keras.applications.vgg16``)."""

from netcore.applications.vgg import VGG16, preprocess_input

__all__ = ["VGG16", "preprocess_input"]
