"""``ResNet50`` and its ``preprocess_input`` under Keras's module name (``keras.applications.resnet50``)."""

from netcore.applications.resnet import ResNet50, preprocess_input

__all__ = ["ResNet50", "preprocess_input"]
