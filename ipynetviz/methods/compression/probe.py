"""Test accuracy with some layers' weights replaced, recomputing only what the change reaches.

A change to one layer leaves every activation below it as it was, so a slider over ``fc1``'s sparsity
needs only ``fc1`` and what follows. For models that are an ``nn.Sequential`` (the zoo's) the input of
each top-level layer is computed once and kept; other models run whole, with the weights swapped in by
``torch.func.functional_call`` (the model's own parameters are never touched).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ...engine.checks import check_batch_size
from ...engine.control import is_cancelled, progress_reporter
from ...engine.errors import DatasetError
from .layers import model_of


class AccuracyProbe:
    """Accuracy of an inspector's model on fixed labelled images, with substitute weights.

    Args:
        inspector: the model with its transform (images go through ``inspector.prepare``).
        images, labels: the test set (any image kind the inspector takes; int labels).
        batch_size: images per forward pass (None: 1,024).

    Example:
        >>> from ipynetviz import zoo
        >>> insp = zoo.load("lenet-300-100")
        >>> x, y = zoo.mnist("test")
        >>> probe = AccuracyProbe(insp, x[:200], y[:200])
        >>> w = insp.model.fc1.weight.detach()
        >>> probe.accuracy() == probe.accuracy({"fc1": w}), probe.accuracy({"fc1": 0 * w}) < 0.5
        (True, True)
    """

    def __init__(self, inspector: Any, images: Any, labels: Any, batch_size: int | None = None):
        self.inspector = inspector
        self.model = model_of(inspector)
        self.x = inspector.prepare(images)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).to(self.x.device)
        if len(self.labels) != len(self.x):
            raise DatasetError(f"{len(self.x)} images but {len(self.labels)} labels; pass one label per image")
        # one batch of a usual test set: at the later layers the cost is the per-call overhead, not the sums
        self.batch_size = check_batch_size(batch_size, default=1024)
        self._children = list(self.model.named_children()) if isinstance(self.model, nn.Sequential) else []
        self._index = {name: i for i, (name, _) in enumerate(self._children)}
        self._inputs: dict[int, torch.Tensor] = {0: self.x}

    def _start_of(self, weights: Mapping[str, torch.Tensor]) -> int | None:
        """Index of the first top-level child a change reaches (None: not a Sequential of named layers)."""
        if not self._children:
            return None
        try:
            return min((self._index[n] for n in weights), default=len(self._children))
        except KeyError:
            return None

    def _input_of(self, index: int) -> torch.Tensor:
        if index not in self._inputs:
            below = max(i for i in self._inputs if i < index)
            h = self._inputs[below]
            with torch.no_grad():
                for _, child in self._children[below:index]:
                    h = _batched(child, h, self.batch_size)
            self._inputs[index] = h
        return self._inputs[index]

    def logits(self, weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits of all images with ``{layer: weight}`` substituted (the model keeps its own weights)."""
        p = next(self.model.parameters())
        weights = {n: w.to(p.device, p.dtype) for n, w in (weights or {}).items()}
        lock = getattr(self.inspector, "eval_guard", None)
        with (lock() if lock is not None else _eval(self.model)), torch.no_grad():
            start = self._start_of(weights)
            if start is None:
                params = {f"{n}.weight": w for n, w in weights.items()}
                return _batched(lambda xb: functional_call(self.model, params, (xb,)), self.x, self.batch_size)
            h = self._input_of(start)
            for name, child in self._children[start:]:
                if name in weights:
                    h = _batched(lambda xb, c=child, w=weights[name]: functional_call(c, {"weight": w}, (xb,)),
                                 h, self.batch_size)
                else:
                    h = _batched(child, h, self.batch_size)
            return h

    def commit(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Write ``weights`` into the model (in place: give the probe a copy) and forget the inputs they change.

        A lab keeps its compressed state this way: the next change to one layer reuses everything below it,
        computed with the other layers' current (pruned, quantized) weights.
        """
        modules = dict(self.model.named_modules())
        lock = getattr(self.inspector, "model_lock", None)
        with (lock if lock is not None else _eval(self.model)), torch.no_grad():
            for name, w in weights.items():
                modules[name].weight.copy_(w)
            start = self._start_of(weights)
            self._inputs = {i: t for i, t in self._inputs.items() if start is not None and i <= start}
            self._inputs[0] = self.x

    def accuracy(self, weights: Mapping[str, torch.Tensor] | None = None) -> float:
        """Share of images whose top logit is the label: correct count / images (an exact fraction)."""
        logits = self.logits(weights)
        return int((logits.argmax(1) == self.labels).sum()) / len(self.labels)


def _batched(fn, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    if len(x) <= batch_size:
        return fn(x)
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


class _eval:
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


def run_grid(probe: AccuracyProbe, jobs, cancel=None, progress=False, desc: str = ""):
    """Evaluate ``jobs`` (an iterable of weight dicts); stops early on ``cancel`` (returns what it has)."""
    jobs = list(jobs)
    out = []
    with progress_reporter(progress, len(jobs), desc=desc, unit="eval") as report:
        for i, weights in enumerate(jobs):
            if is_cancelled(cancel):
                break
            out.append(probe.accuracy(weights))
            report(i + 1)
    return out


__all__ = ["AccuracyProbe", "run_grid"]
