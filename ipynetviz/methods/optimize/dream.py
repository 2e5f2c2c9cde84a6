"""DeepDream: amplify whatever a layer already sees in an image, over several octaves (Mordvintsev et al. 2015).

The gradient of ``0.5 * ||a||^2`` with respect to the layer's activations ``a`` is ``a`` itself, so ascending
it makes every unit respond more to what it already responds to. Each step moves the pixels by ``lr`` times
the gradient divided by its mean absolute value (a fixed step size whatever the layer's scale). Octaves run
from coarse to fine: the detail added at a small scale is upsampled and kept at the next.
"""
from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ipynetviz.engine.checks import check_positive
from ipynetviz.engine.control import check_callback_every, is_cancelled
from ipynetviz.engine.errors import SettingError

from .loop import run_model
from .results import DreamResult
from .space import PixelSpace, check_steps

__all__ = ["deep_dream"]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _rms(a: torch.Tensor) -> torch.Tensor:
    return a.detach().reshape(a.shape[0], -1).pow(2).mean(1).sqrt()


def deep_dream(insp, image: Any, layer: str, octaves: int = 3, steps: int = 10, lr: float = 0.02,
               octave_scale: float = 1.4, jitter: int = 2, min_size: int = 16, callback: Callable | None = None,
               callback_every: int = 5, cancel: Any = None, seed: int = 0) -> DreamResult:
    """Amplify the activations of ``layer`` in ``image`` by gradient ascent over ``octaves`` scales.

    Args:
        insp: the inspector.
        image: the image(s) to dream on, any form ``insp.prepare`` accepts.
        layer: a name from ``insp.layers``.
        octaves: scales, each ``octave_scale`` times larger than the previous, ending at the image size.
        steps: ascent steps per octave.
        lr: step size in pixel units (each step moves pixels by ``lr`` times the gradient over its mean size).
        octave_scale: size ratio between octaves (> 1).
        jitter: random shift in pixels before each step (0 for none).
        min_size: smallest side an octave may have; fewer octaves are used if needed.
        callback: called with a partial :class:`DreamResult` every ``callback_every`` steps and after each octave.
        callback_every, cancel, seed: as in :func:`visualize`.

    Returns:
        A :class:`DreamResult`; ``norms[o, s]`` is the layer's RMS activation before step ``s`` of octave ``o``.

    Example:
        >>> import torch
        >>> from ipynetviz.engine import Inspector
        >>> torch.manual_seed(0) and None
        >>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        >>> insp = Inspector(m, input_size=(3, 16, 16), device="cpu")
        >>> r = deep_dream(insp, torch.rand(1, 3, 16, 16), "1", octaves=1, steps=5, jitter=0)
        >>> bool((r.norms[0, 1:] > r.norms[0, :-1]).all())
        True
    """
    octaves = check_steps(octaves, "octaves")
    steps = check_steps(steps)
    lr = check_positive(lr, "lr")
    callback_every = check_callback_every(callback_every)
    octave_scale = check_positive(octave_scale, "octave_scale")
    if octave_scale <= 1:
        raise SettingError(f"octave_scale must be > 1, got {octave_scale}; e.g. 1.4")
    if isinstance(jitter, bool) or int(jitter) < 0:
        raise SettingError(f"jitter must be a non-negative integer, got {jitter!r}")
    insp.module(layer)
    x0 = insp.prepare(image)
    space = PixelSpace(insp, channels=x0.shape[1])
    base = space.clamp_(space.to_pixels(x0).clone())
    h, w = base.shape[-2:]
    sizes = []
    for o in range(octaves):
        f = octave_scale ** (octaves - 1 - o)
        sizes.append((max(1, round(h / f)), max(1, round(w / f))))
    sizes = [s for s in sizes if min(s) >= min(min_size, h, w)]
    rng = random.Random(int(seed))
    norms = np.full((len(sizes), steps + 1, base.shape[0]), np.nan)
    settings = {"method": "deep_dream", "layer": layer, "octaves": len(sizes), "steps": steps, "lr": lr,
                "octave_scale": octave_scale, "jitter": int(jitter), "seed": int(seed)}
    state = {"pixels": base, "done": 0, "interrupted": False}

    def build() -> DreamResult:
        p = state["pixels"]
        if tuple(p.shape[-2:]) != (h, w):  # a partial result from a coarse octave: keep its detail only
            p = space.clamp_(base + _resize(p - _resize(base, tuple(p.shape[-2:])), (h, w)))
        x = space.to_model(p)
        return DreamResult(input=x.cpu(), images=space.to_uint8(x), layer=layer, norms=norms.copy(),
                           sizes=tuple(sizes), settings=dict(settings), interrupted=state["interrupted"],
                           steps_done=state["done"])

    detail = torch.zeros_like(_resize(base, sizes[0]))
    with insp.eval_guard(), torch.enable_grad(), insp.hooks(capture=[layer], stop_after_capture=True) as cache:
        try:
            for o, size in enumerate(sizes):
                octave_base = _resize(base, size)
                p = (octave_base + _resize(detail, size)).detach()
                space.clamp_(p)
                for s in range(steps):
                    if is_cancelled(cancel):
                        state["interrupted"] = True
                        break
                    dy, dx = (rng.randint(-jitter, jitter), rng.randint(-jitter, jitter)) if jitter else (0, 0)
                    shifted = torch.roll(p, (dy, dx), (-2, -1)).requires_grad_(True)
                    cache.clear()
                    run_model(insp.model, space.to_model(shifted))
                    a = cache[layer]
                    norms[o, s] = _rms(a).cpu().numpy()
                    grad, = torch.autograd.grad(0.5 * a.pow(2).sum(), shifted)
                    grad = torch.roll(grad, (-dy, -dx), (-2, -1))
                    scale = grad.abs().reshape(grad.shape[0], -1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
                    p = space.clamp_(p + lr * grad / scale)
                    state["done"] += 1
                    state["pixels"] = p
                    if callback is not None and state["done"] % callback_every == 0:
                        callback(build())
                with torch.no_grad():
                    cache.clear()
                    run_model(insp.model, space.to_model(p))
                    norms[o, s + 1 if not state["interrupted"] else s] = _rms(cache[layer]).cpu().numpy()
                detail = p - octave_base
                state["pixels"] = p
                if state["interrupted"]:
                    break
                if callback is not None:
                    callback(build())
        except KeyboardInterrupt:
            state["interrupted"] = True
        finally:
            cache.clear()
    return build()
