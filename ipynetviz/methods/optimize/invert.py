"""Feature inversion: what a layer's code remembers of an image (Mahendran & Vedaldi 2015).

Find pixels x whose code at ``layer`` matches the given image's code phi0, by minimising
``||phi(x) - phi0||^2 / ||phi0||^2 + tv * TV(x)`` (the normalised code error plus a total-variation prior that
prefers natural, piecewise smooth pictures). Shallow layers give back almost the photo; deep layers keep
the parts that matter for the class and lose the rest.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ipynetviz.engine.checks import check_positive
from ipynetviz.engine.control import check_callback_every
from ipynetviz.engine.errors import SettingError

from .loop import ascend, run_model
from .objectives import tv_penalty
from .regularizers import split_regularizers
from .results import InversionResult
from .space import PixelSpace, check_steps

__all__ = ["invert"]


def _code(insp, x: torch.Tensor, layer: str) -> torch.Tensor:
    with insp.eval_guard(), torch.no_grad(), insp.hooks(capture=[layer], stop_after_capture=True) as cache:
        run_model(insp.model, x)
        return cache[layer].detach()


def _relative_error(code: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    diff = (code - target).reshape(code.shape[0], -1)
    return diff.norm(dim=1) / target.reshape(target.shape[0], -1).norm(dim=1).clamp_min(1e-12)


def invert(insp, image: Any, layer: str, steps: int = 200, lr: float = 0.05, tv: float = 0.5,
           regularizers: Any = None, init: Any = "zeros", callback: Callable | None = None, callback_every: int = 16,
           cancel: Any = None, seed: int = 0) -> InversionResult:
    """Reconstruct images from their code at ``layer`` with a total-variation prior.

    Args:
        insp: the inspector.
        image: the image(s) to invert, any form ``insp.prepare`` accepts.
        layer: a name from ``insp.layers``.
        steps: gradient steps (>= 1).
        lr: Adam step size in pixel units.
        tv: weight of the mean squared pixel gradient (total variation with beta = 2, per pixel); 0 turns the
            prior off. The code error is normalised by the code's size, so one weight suits every layer.
        regularizers: further penalties or picture operations (e.g. ``Jitter(1)``), as in :func:`visualize`.
        init: ``"zeros"`` (mean colour), ``"noise"``, or starting images.
        callback, callback_callback_every, cancel, seed: as in :func:`visualize`.

    Returns:
        An :class:`InversionResult`; ``relative_error`` is the final ``||phi(x) - phi0|| / ||phi0||`` and
        ``terms["relative_error"]`` its value at every step.

    Example:
        >>> import torch
        >>> from ipynetviz.engine import Inspector
        >>> torch.manual_seed(0) and None
        >>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
        >>> insp = Inspector(m, input_size=(3, 8, 8), device="cpu")
        >>> r = invert(insp, torch.rand(1, 3, 8, 8), "1", steps=150, lr=0.05, tv=0.0)
        >>> bool(r.relative_error[0] < 0.1)
        True
    """
    steps = check_steps(steps)
    lr = check_positive(lr, "lr")
    tv = check_positive(tv, "tv", allow_zero=True)
    callback_every = check_callback_every(callback_every)
    insp.module(layer)
    penalties, ops = split_regularizers(regularizers)
    penalty = None
    if penalties:
        from .objectives import Objective
        penalty = sum(penalties, Objective()).bind(insp, 1)
        if penalty.layers or penalty.needs_logits:
            raise SettingError("invert's regularizers must be picture penalties (L2, TV) or operations")
    x0 = insp.prepare(image)
    space = PixelSpace(insp, channels=x0.shape[1])
    target = _code(insp, x0, layer)
    if not bool(target.reshape(target.shape[0], -1).norm(dim=1).gt(0).all()):
        raise SettingError(f"the code of an image at layer {layer!r} is all zeros (dead layer for this image); "
                           "nothing to invert: pick another layer or image")
    pixels = space.initial(init, x0.shape[0], tuple(x0.shape[1:]), seed)
    per_pixel = float(pixels[0].numel())

    def score(ctx):
        rel = _relative_error(ctx.captured[layer], target)
        loss = rel.pow(2) + tv * tv_penalty(ctx.pixels) / per_pixel
        if penalty is not None:
            loss = loss + penalty.score(ctx)
        return -loss, {"relative_error": rel}

    settings = {"method": "invert", "layer": layer, "steps": steps, "lr": lr, "tv": tv,
                "init": init if isinstance(init, str) else "image", "seed": int(seed),
                "regularizers": [repr(r) for r in penalties + ops]}
    original = space.to_uint8(x0)

    def build(progress, final: bool) -> InversionResult:
        x = space.to_model(progress.pixels)
        rel = _relative_error(_code(insp, x, layer), target) if final else \
            progress.history["relative_error"][-1]
        return InversionResult(
            input=x.cpu(), images=space.to_uint8(x), objective=progress.series("objective"),
            terms={"relative_error": progress.series("relative_error")}, settings=dict(settings),
            interrupted=progress.interrupted, steps_done=progress.steps_done,
            descriptions=tuple(f"inversion of {layer}" for _ in range(x.shape[0])),
            layer=layer, relative_error=rel.double().cpu().numpy(), original=original)

    on_step = None if callback is None else (lambda pr: callback(build(pr, False)))
    progress = ascend(insp, space, pixels, score, layers=[layer], needs_logits=False, steps=steps, lr=lr,
                      ops=ops, on_step=on_step, callback_every=callback_every, cancel=cancel, seed=seed)
    return build(progress, True)
