"""The gradient-ascent loop shared by class/unit visualisation, inversion and style transfer.

One run holds the eval guard and the capture hooks for its whole duration (not per step: registering
hooks costs as much as a small layer), uses ``torch.autograd.grad`` so no gradient ever lands in a
parameter's ``.grad``, and keeps what it has when it is cancelled or interrupted.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ipynetviz.engine.control import is_cancelled
from ipynetviz.engine.errors import SettingError
from ipynetviz.engine.hooks import StopForward, first_tensor

from .objectives import Context
from .param import BoundParam
from .regularizers import ImageOp
from .space import PixelSpace


@dataclass
class Progress:
    """The state of a run: current pixels, per-step series (lists of (N,) tensors), steps done."""

    pixels: torch.Tensor
    history: dict = field(default_factory=dict)
    steps_done: int = 0
    interrupted: bool = False

    def series(self, name: str) -> np.ndarray:
        rows = self.history.get(name, [])
        if not rows:
            return np.zeros((0, self.pixels.shape[0]))
        return torch.stack(rows).double().cpu().numpy()


def run_model(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The model's output, or None when a capture hook stopped the pass after the last needed layer."""
    try:
        return first_tensor(model(x))
    except StopForward:
        return None


class Adam:
    """Adam (Kingma & Ba 2015) on one tensor, in place; ``step(grad)`` *ascends* ``grad``.

    Written out instead of ``torch.optim.Adam`` because that one's first use imports torch._dynamo (seconds)
    and its per-step bookkeeping is a visible share of a small network's step.
    """

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.lerp_(grad, 1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = self.v.sqrt().div_(math.sqrt(1 - b2 ** self.t)).add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=self.lr / (1 - b1 ** self.t))


def _pixels(param: BoundParam, p: torch.Tensor, plain: bool) -> torch.Tensor:
    with torch.no_grad():
        return p.detach().clone() if plain else param.to_pixels(p).detach()


def ascend(insp, space: PixelSpace, pixels: torch.Tensor,
           score_fn: Callable[[Context], tuple[torch.Tensor, dict]], *, layers: Sequence[str],
           needs_logits: bool, steps: int, lr: float, ops: Sequence[ImageOp] = (),
           on_step: Callable[[Progress], None] | None = None, callback_every: int = 10, cancel: Any = None,
           seed: int = 0, param: BoundParam | None = None) -> Progress:
    """Maximise ``score_fn`` over the picture's parameters with Adam (pixels by default, clamped to [0, 1]).

    Args:
        insp: the inspector.
        space: pixel <-> model input mapping.
        pixels: starting pixels (N, C, H, W) on ``insp.device``.
        score_fn: ``ctx -> (scores (N,), extras {name: (N,)})``; scores are maximised per sample.
        layers: layers ``score_fn`` reads from ``ctx.captured``.
        needs_logits: False lets the forward pass stop after the last captured layer.
        steps, lr: step count and Adam step size.
        ops: picture regularizers (jitter before, blur/clipping after each step).
        on_step: called with the progress after every ``callback_every``-th step and after the last one.
        cancel: an Event, executor Ticket or callable; checked before every step.
        seed: seeds the jitter offsets.
        param: a bound parametrization (:mod:`.param`); None optimises the pixels themselves. Picture
            operations that edit pixels after a step (blur, clipping, centre bias) act on its pixels, which are
            then mapped back to its parameters with its exact inverse.

    Returns:
        The :class:`Progress` (``interrupted`` when cancelled or on KeyboardInterrupt).
    """
    rng = random.Random(int(seed))
    param = param if param is not None else BoundParam(space, tuple(pixels.shape))
    plain = type(param) is BoundParam
    p = param.from_pixels(pixels).requires_grad_(True)
    opt = Adam(p, lr)
    progress = Progress(pixels=pixels.detach())
    history: dict[str, list] = {"objective": []}
    progress.history = history
    stop_early = bool(layers) and not needs_logits
    for op in ops:
        op.begin(steps)
    editors = [op for op in ops if op.edits_pixels()]
    with insp.eval_guard(), torch.enable_grad(), \
            insp.hooks(capture=list(layers), stop_after_capture=stop_early) as cache:
        try:
            while progress.steps_done < steps:
                if is_cancelled(cancel):
                    progress.interrupted = True
                    break
                picture = p if plain else param.to_pixels(p)
                shifted = picture
                for op in ops:
                    shifted = op.shift(shifted, rng)
                x = space.to_model(shifted)
                cache.clear()
                logits = run_model(insp.model, x)
                scores, extras = score_fn(Context(x, shifted, logits, cache))
                if plain or not editors:
                    grad, = torch.autograd.grad(scores.sum(), p)
                    pixel_grad = grad
                else:
                    grad, pixel_grad = torch.autograd.grad(scores.sum(), [p, picture])
                with torch.no_grad():
                    opt.step(grad)
                    if plain:
                        for op in ops:
                            op.apply_(p, grad, progress.steps_done, space)
                    elif editors:
                        edited = param.to_pixels(p)
                        before = edited.clone()
                        for op in editors:
                            op.apply_(edited, pixel_grad, progress.steps_done, space)
                        if not torch.equal(edited, before):
                            p.copy_(param.from_pixels(edited))
                    param.clamp_(p)
                history["objective"].append(scores.detach())
                for k, v in extras.items():
                    history.setdefault(k, []).append(v.detach())
                progress.steps_done += 1
                if on_step is not None and (progress.steps_done % callback_every == 0 or progress.steps_done == steps):
                    progress.pixels = _pixels(param, p, plain)
                    on_step(progress)
        except KeyboardInterrupt:
            progress.interrupted = True
        finally:
            cache.clear()
    progress.pixels = _pixels(param, p, plain)
    return progress
