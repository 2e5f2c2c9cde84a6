"""Architectures of the teaching CNNs: small VGG-style stacks with readable layer names.

Each model is an ``nn.Sequential`` of named modules (``conv1, relu1, pool1, conv2, ...``), every
ReLU its own non-in-place module, so an inspector lists and hooks every stage separately.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What a teaching model needs besides its weights.

    Args:
        name: zoo name, e.g. ``"shapes-cnn"``.
        input_size: (C, H, W) the network was trained on.
        dataset: the zoo data set it was trained on (``"shapes"`` or ``"digits"``).
        conv1_kernel: side of the first-layer filters (the ones a filter grid shows).
    """

    name: str
    input_size: tuple[int, int, int]
    dataset: str
    conv1_kernel: int


SPECS = {
    "shapes-cnn": ModelSpec("shapes-cnn", (3, 64, 64), "shapes", 7),
    "digits-cnn": ModelSpec("digits-cnn", (1, 32, 32), "digits", 5),
}


def _stage(layers: OrderedDict, k: int, c_in: int, c_out: int, kernel: int, stride: int = 1,
           pool: bool = True) -> None:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    # He initialisation keeps the activation scale through the ReLU stack (torch's default
    # shrinks it about 6x in variance per layer, which slows early training and lets units die)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    layers[f"conv{k}"] = conv
    layers[f"relu{k}"] = nn.ReLU()
    if pool:
        layers[f"pool{k}"] = nn.MaxPool2d(2)


def _head(layers: OrderedDict, c_in: int, num_classes: int) -> None:
    layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(c_in, num_classes)


def shapes_cnn(num_classes: int = 10) -> nn.Sequential:
    """The shapes teaching CNN for 3x64x64 input: 4 conv stages, global average pool, ``fc``.

    conv1 has 32 filters of 7x7 at stride 2 (AlexNet-like: big enough to show edges and colour
    blobs in a filter grid); conv2-conv4 are 3x3.

    Args:
        num_classes: outputs of ``fc``.

    Returns:
        An untrained ``nn.Sequential``.

    Example:
        >>> import torch
        >>> shapes_cnn()(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 10])
    """
    layers: OrderedDict = OrderedDict()
    _stage(layers, 1, 3, 32, 7, stride=2)     # 64 -> 32 -> pool 16
    _stage(layers, 2, 32, 64, 3)              # 16 -> pool 8
    _stage(layers, 3, 64, 128, 3)             # 8 -> pool 4
    _stage(layers, 4, 128, 128, 3, pool=False)
    _head(layers, 128, num_classes)
    return nn.Sequential(layers)


def digits_cnn(num_classes: int = 10) -> nn.Sequential:
    """The digits teaching CNN for 1x32x32 input: 4 conv stages, global average pool, ``fc``.

    Args:
        num_classes: outputs of ``fc``.

    Returns:
        An untrained ``nn.Sequential``.

    Example:
        >>> import torch
        >>> digits_cnn()(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """
    layers: OrderedDict = OrderedDict()
    _stage(layers, 1, 1, 32, 5)               # 32 -> pool 16
    _stage(layers, 2, 32, 64, 3)              # 16 -> pool 8
    _stage(layers, 3, 64, 64, 3)              # 8 -> pool 4
    _stage(layers, 4, 64, 128, 3, pool=False)
    _head(layers, 128, num_classes)
    return nn.Sequential(layers)


BUILDERS = {"shapes-cnn": shapes_cnn, "digits-cnn": digits_cnn}
