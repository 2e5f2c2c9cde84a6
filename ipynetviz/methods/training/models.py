"""Models a training run can build by name: the zoo's CNNs and LeNets (optionally with batch norm) and Zhang et
al.'s MLP 1x512.

A BatchNorm variant is the same network with ``bnK`` after every ``convK``; batch norm's initial
state is fixed (scale 1, shift 0), so for one seed both variants start from the same conv weights and
a BN-on/BN-off comparison differs in batch norm only.
"""
from __future__ import annotations

from collections import OrderedDict
from math import prod

from torch import nn

from ...engine.errors import ModelError

MODELS = ("shapes-cnn", "digits-cnn", "mlp-512", "lenet-300-100", "lenet-5")


def with_batch_norm(model: nn.Sequential) -> nn.Sequential:
    """``model`` with a ``BatchNorm2d`` (``bnK``) after every conv ``convK`` and a ``BatchNorm1d`` after ``fcK``.

    Example:
        >>> from ipynetviz.zoo import digits_cnn
        >>> [n for n, _ in with_batch_norm(digits_cnn()).named_children()][:4]
        ['conv1', 'bn1', 'relu1', 'pool1']
    """
    layers: OrderedDict = OrderedDict()
    linears = [n for n, m in model.named_children() if isinstance(m, nn.Linear)]
    for name, module in model.named_children():
        layers[name] = module
        suffix = name[len("conv"):] if name.startswith("conv") else name[len("fc"):]
        if isinstance(module, nn.Conv2d):
            layers[f"bn{suffix}"] = nn.BatchNorm2d(module.out_channels)
        elif isinstance(module, nn.Linear) and name != linears[-1]:  # not after the output layer
            layers[f"bn{suffix}"] = nn.BatchNorm1d(module.out_features)
    return nn.Sequential(layers)


def mlp(input_size, hidden: int = 512, num_classes: int = 10) -> nn.Sequential:
    """Zhang et al.'s MLP 1x512: ``flatten, fc1 (512), relu1, fc``.

    Example:
        >>> import torch
        >>> mlp((1, 8, 8))(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(prod(input_size), hidden)),
        ("relu1", nn.ReLU()),
        ("fc", nn.Linear(hidden, num_classes)),
    ]))


def build(name: str, batch_norm: bool = False, input_size=None, num_classes: int = 10) -> nn.Sequential:
    """A fresh, untrained model by name (one of :data:`MODELS`).

    Args:
        name: ``"shapes-cnn"``, ``"digits-cnn"``, ``"mlp-512"``, ``"lenet-300-100"`` or ``"lenet-5"``.
        batch_norm: insert batch norm after every conv / hidden linear layer.
        input_size: (C, H, W) of the data (needed by the MLP).
        num_classes: outputs.
    """
    from ...zoo.models import BUILDERS

    if name in BUILDERS:
        model = BUILDERS[name](num_classes=num_classes)
    elif name == "mlp-512":
        if input_size is None:
            raise ModelError("mlp-512 needs input_size=(C, H, W) of the data, e.g. input_size=(3, 64, 64)")
        model = mlp(input_size, num_classes=num_classes)
    else:
        raise ModelError(f"unknown model {name!r}; use one of {list(MODELS)} or pass an nn.Module")
    return with_batch_norm(model) if batch_norm else model


__all__ = ["MODELS", "build", "mlp", "with_batch_norm"]


def dataset_of(name: str) -> str:
    """The zoo data set a named model trains on ("digits" for the MLP and unknown names)."""
    from ...zoo.models import SPECS  # the zoo's table of teaching models; imported on use
    return SPECS[name].dataset if name in SPECS else "digits"
