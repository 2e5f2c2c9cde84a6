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
        dataset: the zoo data set it was trained on (``"shapes"``, ``"digits"`` or ``"mnist"``).
        conv1_kernel: side of the first-layer filters (the ones a filter grid shows; 0: no conv layer).
    """

    name: str
    input_size: tuple[int, int, int]
    dataset: str
    conv1_kernel: int


SPECS = {
    "shapes-cnn": ModelSpec("shapes-cnn", (3, 64, 64), "shapes", 7),
    "digits-cnn": ModelSpec("digits-cnn", (1, 32, 32), "digits", 5),
    # the two MNIST nets of Deep Compression (Han et al. 2016, Tables 2 and 3)
    "lenet-300-100": ModelSpec("lenet-300-100", (1, 28, 28), "mnist", 0),
    "lenet-5": ModelSpec("lenet-5", (1, 28, 28), "mnist", 5),
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


def lenet_300_100(num_classes: int = 10) -> nn.Sequential:
    """LeNet-300-100 for 1x28x28 input: fully connected 784-300-100-10 with ReLUs (266,610 parameters).

    Args:
        num_classes: outputs of ``fc3``.

    Returns:
        An untrained ``nn.Sequential`` (``flatten, fc1, relu1, fc2, relu2, fc3``).

    Example:
        >>> import torch
        >>> m = lenet_300_100()
        >>> m(torch.zeros(2, 1, 28, 28)).shape, sum(p.numel() for p in m.parameters())
        (torch.Size([2, 10]), 266610)
    """
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(784, 300)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(300, 100)), ("relu2", nn.ReLU()),
        ("fc3", nn.Linear(100, num_classes)),
    ]))


def lenet_5(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 as Caffe's MNIST example and Deep Compression use it (431,080 parameters).

    conv 20@5x5, max pool 2, conv 50@5x5, max pool 2, fc 800-500, ReLU, fc 500-10. As in Caffe's
    ``lenet_train_test.prototxt`` the only nonlinearity is the ReLU after ``fc1`` (the conv layers are
    followed by pooling only), so the weight counts match the paper's Table 3.

    Args:
        num_classes: outputs of ``fc2``.

    Returns:
        An untrained ``nn.Sequential`` (``conv1, pool1, conv2, pool2, flatten, fc1, relu1, fc2``).

    Example:
        >>> import torch
        >>> m = lenet_5()
        >>> m(torch.zeros(2, 1, 28, 28)).shape, sum(p.numel() for p in m.parameters())
        (torch.Size([2, 10]), 431080)
    """
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 20, 5)), ("pool1", nn.MaxPool2d(2)),      # 28 -> 24 -> 12
        ("conv2", nn.Conv2d(20, 50, 5)), ("pool2", nn.MaxPool2d(2)),     # 12 -> 8 -> 4
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(800, 500)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(500, num_classes)),
    ]))


BUILDERS = {"shapes-cnn": shapes_cnn, "digits-cnn": digits_cnn, "lenet-300-100": lenet_300_100, "lenet-5": lenet_5}
