"""Style transfer: the content of one picture in the textures of another (Gatys, Ecker & Bethge 2015).

Content is a layer's feature maps; style is the Gram matrices of several layers' feature maps (which
channels fire together, wherever they are). Both losses are normalised by the size of their target, so the
weights mean "how much of each" whatever the layers' scales:

    content_loss = ||F(x) - F(c)||^2 / ||F(c)||^2
    style_loss   = mean over style layers of ||G(x) - G(s)||^2 / ||G(s)||^2
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ipynetviz.engine.checks import check_positive
from ipynetviz.engine.control import check_callback_every
from ipynetviz.engine.errors import SettingError

from .loop import ascend, run_model
from .objectives import tv_penalty
from .results import StyleResult
from .space import PixelSpace, check_steps

__all__ = ["gram", "style_transfer"]


def gram(acts: torch.Tensor) -> torch.Tensor:
    """Gram matrices of feature maps: ``G[n, i, j] = sum_p a[n, i, p] * a[n, j, p] / P`` over the P positions.

    Args:
        acts: activations (N, C, H, W) (or (N, C, P)).

    Returns:
        (N, C, C) tensor, symmetric, on the activations' device.

    Example:
        >>> a = torch.tensor([[[[1.0, 2.0]], [[0.0, 3.0]]]])   # N=1, C=2, H=1, W=2
        >>> gram(a).tolist()
        [[[2.5, 3.0], [3.0, 4.5]]]
    """
    if acts.ndim < 3:
        raise SettingError(f"gram needs activations (N, C, H, W) or (N, C, P), got shape {tuple(acts.shape)}")
    f = acts.reshape(acts.shape[0], acts.shape[1], -1)
    return f @ f.transpose(1, 2) / f.shape[-1]


def _normalised_sq_error(a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = (a - target).reshape(a.shape[0], -1).pow(2).sum(1)
    return d / target.reshape(target.shape[0], -1).pow(2).sum(1).clamp_min(1e-12)


def style_transfer(insp, content: Any, style: Any, content_layer: str, style_layers: Sequence[str],
                   steps: int = 200, lr: float = 0.03, content_weight: float = 1.0, style_weight: float = 1.0,
                   tv: float = 0.0, init: Any = "content", callback: Callable | None = None, callback_every: int = 16,
                   cancel: Any = None, seed: int = 0) -> StyleResult:
    """Draw ``content`` with the style of ``style`` by minimising content, style and smoothness losses.

    Args:
        insp: the inspector.
        content: the content image(s), any form ``insp.prepare`` accepts.
        style: one style image; if its size differs from the content's it is resized to it (bilinear,
            antialiased) and ``settings["style_resized_from"]`` records the original size.
        content_layer: layer whose feature maps carry the content.
        style_layers: layers whose Gram matrices carry the style.
        steps, lr: Adam steps and step size in pixel units.
        content_weight, style_weight: weights of the two normalised losses (>= 0, not both 0).
        tv: weight of the per-pixel total variation (beta = 2).
        init: ``"content"`` (start from the content image), ``"zeros"``, ``"noise"`` or images.
        callback, callback_callback_every, cancel, seed: as in :func:`visualize`.

    Returns:
        A :class:`StyleResult` with the final unweighted ``content_loss`` and ``style_loss`` and their history
        in ``terms``.
    """
    steps = check_steps(steps)
    lr = check_positive(lr, "lr")
    callback_every = check_callback_every(callback_every)
    cw = check_positive(content_weight, "content_weight", allow_zero=True)
    sw = check_positive(style_weight, "style_weight", allow_zero=True)
    tv = check_positive(tv, "tv", allow_zero=True)
    if cw == 0 and sw == 0:
        raise SettingError("content_weight and style_weight are both 0; nothing to optimise")
    if isinstance(style_layers, str):
        style_layers = [style_layers]
    style_layers = list(dict.fromkeys(style_layers))
    if not style_layers:
        raise SettingError("give at least one style layer, e.g. style_layers=['relu1', 'relu2']")
    for name in [content_layer, *style_layers]:
        insp.module(name)
    xc = insp.prepare(content)
    xs = insp.prepare(style)
    if xs.shape[0] != 1:
        raise SettingError(f"give one style image, got {xs.shape[0]}")
    settings = {"method": "style_transfer", "content_layer": content_layer, "style_layers": style_layers,
                "steps": steps, "lr": lr, "content_weight": cw, "style_weight": sw, "tv": tv,
                "init": init if isinstance(init, str) else "image", "seed": int(seed)}
    if xs.shape[-2:] != xc.shape[-2:]:
        settings["style_resized_from"] = tuple(xs.shape[-2:])
        xs = F.interpolate(xs, size=tuple(xc.shape[-2:]), mode="bilinear", align_corners=False, antialias=True)
    layers = list(dict.fromkeys([content_layer, *style_layers]))
    with insp.eval_guard(), torch.no_grad(), insp.hooks(capture=layers, stop_after_capture=True) as cache:
        run_model(insp.model, xc)
        content_target = cache[content_layer].detach()
        cache.clear()
        run_model(insp.model, xs)
        style_targets = {l: gram(cache[l]).detach() for l in style_layers}
        cache.clear()
    space = PixelSpace(insp, channels=xc.shape[1])
    n = xc.shape[0]
    if isinstance(init, str) and init == "content":
        pixels = space.clamp_(space.to_pixels(xc).clone())
    else:
        pixels = space.initial(init, n, tuple(xc.shape[1:]), seed)
    per_pixel = float(pixels[0].numel())

    def score(ctx):
        c = _normalised_sq_error(ctx.captured[content_layer], content_target)
        s = sum(_normalised_sq_error(gram(ctx.captured[l]), style_targets[l].expand(n, -1, -1))
                for l in style_layers) / len(style_layers)
        loss = cw * c + sw * s + tv * tv_penalty(ctx.pixels) / per_pixel
        return -loss, {"content_loss": c, "style_loss": s}

    def build(progress) -> StyleResult:
        x = space.to_model(progress.pixels)
        last = {k: progress.series(k) for k in ("content_loss", "style_loss")}
        return StyleResult(
            input=x.cpu(), images=space.to_uint8(x), objective=progress.series("objective"), terms=last,
            settings=dict(settings), interrupted=progress.interrupted, steps_done=progress.steps_done,
            descriptions=tuple("style transfer" for _ in range(n)),
            content_loss=last["content_loss"][-1] if progress.steps_done else last["content_loss"][:0].ravel(),
            style_loss=last["style_loss"][-1] if progress.steps_done else last["style_loss"][:0].ravel())

    on_step = None if callback is None else (lambda pr: callback(build(pr)))
    progress = ascend(insp, space, pixels, score, layers=layers, needs_logits=False, steps=steps, lr=lr,
                      on_step=on_step, callback_every=callback_every, cancel=cancel, seed=seed)
    return build(progress)
