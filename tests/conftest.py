"""Shared fixtures: small real models (a teaching-style CNN, torchvision architectures with random weights)."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

torch.set_num_threads(2)


def small_cnn(in_ch: int = 3, classes: int = 5, seed: int = 0) -> nn.Sequential:
    """A teaching-style VGG-ish CNN with named layers (conv1, relu1, pool1, ...)."""
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_ch, 8, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("bn2", nn.BatchNorm2d(16)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(16, 16, 3, padding=1)), ("relu3", nn.ReLU()),
        ("gap", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(16, classes)),
    ]))


class Boom(nn.Module):
    """A layer that raises in forward: the 'module that raises' case of the hook-removal suite."""

    def forward(self, x):
        raise RuntimeError("boom: this module always fails")


@pytest.fixture
def cnn():
    return small_cnn()


@pytest.fixture
def insp(cnn):
    from ipynetviz.engine import Inspector
    return Inspector(cnn, input_size=(3, 32, 32), class_names=[f"c{i}" for i in range(5)])


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
