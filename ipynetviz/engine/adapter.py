"""Calling a model that does not take one image tensor: an input adapter, and the check that asks for one."""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from .errors import ModelError

__all__ = ["Adapted", "check_one_tensor"]


class Adapted(nn.Module):
    """A model called through an input adapter: ``forward(x) = model(*args)``, ``(**kwargs)`` or ``(arg)``."""

    def __init__(self, model: nn.Module, adapter: Callable):
        super().__init__()
        self.inner = model
        self.adapter = adapter

    def forward(self, x: torch.Tensor):
        args = self.adapter(x)
        if isinstance(args, dict):
            return self.inner(**args)
        if isinstance(args, tuple):
            return self.inner(*args)
        return self.inner(args)


def check_one_tensor(model: nn.Module) -> None:
    """A model whose ``forward`` needs more than one argument cannot take an image batch: say how to adapt it."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # builtins and the like: nothing to read
        return
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                                p.POSITIONAL_OR_KEYWORD)]
    if len(required) > 1:
        raise ModelError(f"{type(model).__name__}.forward takes {len(required)} arguments ({', '.join(required)}), "
                         "not one image batch; give an adapter from the image batch to its arguments, e.g. "
                         f"Inspector(model, input_adapter=lambda x: ({', '.join(['x'] + ['...'] * (len(required) - 1))}))")
