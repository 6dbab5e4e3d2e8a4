"""Pretrained networks as Keras's ``keras.applications`` defines them (layer names, weight order, weight files):
``VGG16``, ``VGG19``, ``ResNet50`` and ``MobileNetV2``, each a functional :class:`netcore.models.Model`, with its
family's ``preprocess_input`` in :mod:`~netcore.applications.vgg`, :mod:`~netcore.applications.resnet` and
:mod:`~netcore.applications.mobilenet_v2` (also ``vgg16``, ``vgg19`` and ``resnet50`` as Keras names them)."""

from netcore.applications import mobilenet_v2, resnet, resnet50, vgg, vgg16, vgg19
from netcore.applications.mobilenet_v2 import MobileNetV2
from netcore.applications.resnet import ResNet50
from netcore.applications.vgg import VGG16, VGG19

__all__ = ["VGG16", "VGG19", "MobileNetV2", "ResNet50", "mobilenet_v2", "resnet", "resnet50", "vgg", "vgg16", "vgg19"]
