"""``VGG19`` and its ``preprocess_input`` under Keras's module name (``keras.applications.vgg19``)."""

from netcore.applications.vgg import VGG19, preprocess_input

__all__ = ["VGG19", "preprocess_input"]
