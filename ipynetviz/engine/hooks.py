"""Scoped, nestable hooks: every handle lives only inside a ``with`` block and is removed in ``finally``."""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
from torch import nn


def first_tensor(out):
    """The first tensor in a module output (modules may return tuples or dicts)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = first_tensor(o)
            if t is not None:
                return t
    if isinstance(out, dict):
        for o in out.values():
            t = first_tensor(o)
            if t is not None:
                return t
    return None


class StopForward(Exception):
    """Raised by a capture hook once every requested layer is captured, to skip the rest of the model."""


class ActivationCache(dict):
    """Captured layer outputs by name (a plain dict with a friendly ``KeyError``)."""

    def __missing__(self, key):
        raise KeyError(f"layer {key!r} was not captured (was it run? captured: {sorted(self)})")


class HookSession:
    """Register hooks on entry, remove every one of them on exit, whatever happened in between.

    Args:
        modules: name -> module mapping used to resolve names.
        capture: layer names whose outputs are stored in the yielded :class:`ActivationCache`.
        forward: name -> ``fn(module, inputs, output)`` forward hooks (may return a replacement output).
        forward_pre: name -> ``fn(module, inputs)`` forward pre-hooks.
        backward: name -> ``fn(module, grad_input, grad_output)`` full backward hooks.
        detach: store captured outputs detached (no autograd graph).
        stop_after_capture: raise :class:`StopForward` once all of ``capture`` is stored.
        views: name -> ``fn(output) -> tensor`` applied to a captured output (the layer's canonical view, e.g.
            channels-last -> channels-first; see :mod:`ipynetviz.engine.layout`).

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> with HookSession(dict(m.named_modules()), capture=["0"]) as cache:
        ...     _ = m(torch.ones(1, 2))
        >>> sorted(cache), len(m[0]._forward_hooks)
        (['0'], 0)
    """

    def __init__(self, modules: Mapping[str, nn.Module], capture: Iterable[str] = (),
                 forward: Mapping[str, Callable] | None = None, forward_pre: Mapping[str, Callable] | None = None,
                 backward: Mapping[str, Callable] | None = None, detach: bool = False,
                 stop_after_capture: bool = False, views: Mapping[str, Callable] | None = None):
        self._modules = modules
        self.capture = list(dict.fromkeys(capture))
        self.forward = dict(forward or {})
        self.forward_pre = dict(forward_pre or {})
        self.backward = dict(backward or {})
        self.detach = detach
        self.stop_after_capture = stop_after_capture
        self.views = dict(views or {})
        self.handles: list = []
        self.cache = ActivationCache()

    def _capture_hook(self, name: str):
        view = self.views.get(name)

        def hook(module, inputs, output):
            t = first_tensor(output)
            if t is not None and view is not None:
                t = view(t)
            if t is not None:
                self.cache[name] = t.detach() if self.detach else t
            if self.stop_after_capture and all(c in self.cache for c in self.capture):
                raise StopForward()
        return hook

    def __enter__(self) -> ActivationCache:
        try:
            for name in self.capture:
                self.handles.append(self._modules[name].register_forward_hook(self._capture_hook(name)))
            for name, fn in self.forward_pre.items():
                self.handles.append(self._modules[name].register_forward_pre_hook(fn))
            for name, fn in self.forward.items():
                self.handles.append(self._modules[name].register_forward_hook(fn))
            for name, fn in self.backward.items():
                self.handles.append(self._modules[name].register_full_backward_hook(fn))
        except BaseException:
            self.remove()
            raise
        return self.cache

    def remove(self) -> None:
        while self.handles:
            self.handles.pop().remove()

    def __exit__(self, *exc) -> None:
        self.remove()


def hooks_left(model: nn.Module) -> list[str]:
    """Names of modules that still carry any hook (empty when clean)."""
    left = []
    for name, m in model.named_modules():
        if (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                or getattr(m, "_backward_pre_hooks", None)):
            left.append(name or "<root>")
    return left
