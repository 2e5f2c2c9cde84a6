"""Occlusion (Zeiler & Fergus 2014): slide a window over the image and watch the target score drop.

Work is batched, and by default each batch goes through :mod:`.incremental` inference, which recomputes only
the part of each feature map that the window can reach (exact; checked against the plain model first). A
progressive mode scores a coarse grid first and hands it to ``callback`` so a live view can draw it at once.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...engine.checks import check_batch_size, check_pair
from ...engine.control import check_cancel, is_cancelled, progress_reporter
from ...engine.errors import InputError
from ...engine.hooks import StopForward, first_tensor
from ...engine.targets import TargetSpec
from .incremental import build_runner, occlude
from .results import OcclusionResult

__all__ = ["occlusion", "grid_positions", "fill_values"]

FILLS = ("zero", "mean", "blur")


class _Stopped(Exception):
    """Carries the partial result of a cancelled run past the result cache (a partial map is never cached)."""

    def __init__(self, result):
        super().__init__("occlusion stopped")
        self.result = result


def grid_positions(size: int, window: int, stride: int) -> np.ndarray:
    """Window starts along one axis, as in Captum: 0, stride, ... until the image is covered.

    Example:
        >>> grid_positions(10, 4, 3).tolist()
        [0, 3, 6]
    """
    count = int(np.ceil((size - window) / stride)) + 1
    return np.arange(count, dtype=np.int64) * stride


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < radius:  # tiny images: reflect padding cannot reach that far
        y = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    else:
        y = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k, groups=x.shape[1])
    return F.conv2d(y, k.transpose(2, 3), groups=x.shape[1])


def fill_values(insp, x: torch.Tensor, fill, window: tuple[int, int]) -> torch.Tensor:
    """What the window shows at each pixel, (N, C, H, W) model input.

    Args:
        fill: "zero" (0 in model-input units: the data mean for normalised inputs), "mean" (each image's
            per-channel mean), "blur" (a Gaussian blur of the image, sigma = window / 4), or a colour: one
            number per channel in [0, 1], passed through the inspector's ``Preprocess`` normalisation when it
            has one.
    """
    n, c = x.shape[:2]
    if isinstance(fill, str):
        if fill == "zero":
            return torch.zeros_like(x)
        if fill == "mean":
            return x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
        if fill == "blur":
            return _blur(x, max(1.0, min(window) / 4))
        raise InputError(f"unknown fill {fill!r}; use one of {FILLS} or a colour such as (0.5, 0.5, 0.5)")
    colour = torch.as_tensor(fill, dtype=x.dtype).flatten()
    if colour.numel() == 1:
        colour = colour.repeat(c)
    if colour.numel() != c:
        raise InputError(f"fill colour has {colour.numel()} values but the model input has {c} channels")
    mean, std = getattr(insp.transform, "mean", None), getattr(insp.transform, "std", None)
    if mean is not None and std is not None and len(mean) == c:
        colour = (colour - torch.as_tensor(mean, dtype=x.dtype)) / torch.as_tensor(std, dtype=x.dtype)
    return colour.to(x.device).view(1, c, 1, 1).expand_as(x).contiguous()


class _Scorer:
    """Target scores (and class probabilities) for batches of windows on one image."""

    def __init__(self, insp, image: torch.Tensor, fill: torch.Tensor, spec: TargetSpec, incremental: bool,
                 check_box):
        self.insp, self.image, self.fill, self.spec = insp, image, fill, spec
        self.unit = spec.target if spec.is_unit else None
        self.runner = None
        self.stop_at = None
        if incremental:
            self.runner = build_runner(insp.model, image, check_boxes=check_box, fill=fill)
            if self.runner is not None and self.unit is not None:
                nodes = [n for n in self.runner.nodes if n.op == "call_module" and n.target == self.unit.layer]
                self.stop_at = nodes[0] if nodes else None
                if self.stop_at is None:
                    self.runner = None

    def _score(self, out: torch.Tensor | None, captured: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.spec.score(out, captured)  # one row's spec: its class broadcasts over the windows
        if self.unit is not None:
            return s, None
        probs = out.reshape(out.shape[0], -1).softmax(1)
        return s, probs[:, int(self.spec.classes[0])]

    def baseline(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Score (and probability) of the unoccluded image."""
        if self.runner is not None:
            if self.unit is not None:
                return self._score(None, {self.unit.layer: self.runner.base[self.stop_at]})
            return self._score(first_tensor(self.runner.output), {})
        return self(np.zeros((0, 4), dtype=np.int64), plain=self.image)

    def __call__(self, boxes: np.ndarray, plain: torch.Tensor | None = None):
        if self.runner is not None and plain is None:
            if self.unit is not None:
                act = self.runner.run(boxes, self.image, self.fill, stop_at=self.stop_at)
                return self._score(None, {self.unit.layer: act})
            return self._score(first_tensor(self.runner.run(boxes, self.image, self.fill)), {})
        batch = occlude(self.image, self.fill, boxes) if plain is None else plain
        if self.unit is None:
            return self._score(first_tensor(self.insp.model(batch)), {})
        with self.insp.hooks(capture=[self.unit.layer], stop_after_capture=True) as cache:
            try:
                self.insp.model(batch)
            except StopForward:
                pass
            return self._score(None, dict(cache))


def _boxes(ys: np.ndarray, xs: np.ndarray, window: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    y0, x0 = yy.ravel(), xx.ravel()
    return np.stack([y0, np.minimum(y0 + window[0], size[0]), x0, np.minimum(x0 + window[1], size[1])], 1)


def occlusion(insp, images, target=None, window=16, stride=8, fill="zero", batch_size: int | None = None,
              progressive: bool = False, callback: Callable[[OcclusionResult], Any] | None = None,
              cancel=None, incremental: bool = True, progress=None
              ) -> OcclusionResult:
    """Score every position of an occluding window; see :class:`OcclusionResult` for what comes back.

    Args:
        insp: the :class:`~ipynetviz.engine.Inspector`.
        images: one image or a batch (anything ``insp.prepare`` accepts).
        target: ``Class(k)`` / int (logit of class k), ``Unit(layer, c[, y, x])``, or None for each image's
            predicted class.
        window: window side in pixels, or (height, width).
        stride: step between windows, or (height, width). As in Captum, the last window may hang over the
            border and is clipped.
        fill: "zero", "mean", "blur" or a colour (see :func:`fill_values`).
        batch_size: occluded images per forward pass (default 64 with incremental inference, else 32).
        progressive: first score the grid at twice the stride and hand that result (``complete=False``) to
            ``callback``, then fill in the rest.
        callback: called with each intermediate result and the final one.
        cancel: stop between batches (see :mod:`ipynetviz.engine.control`): the windows scored so far come back
            with ``complete=False`` and NaN elsewhere.
        incremental: use incremental inference when the model allows it (exact; False: plain batches).
        progress: True for a tqdm bar, or ``progress(done, total)`` in windows after each batch.

    Returns:
        :class:`OcclusionResult`.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                   nn.Linear(4, 2))
        >>> r = occlusion(Inspector(m, input_size=(3, 16, 16), device="cpu"), torch.rand(1, 3, 16, 16),
        ...               target=1, window=8, stride=4)
        >>> r.scores.shape, r.attribution().shape
        (torch.Size([1, 3, 3]), (1, 16, 16))
    """
    x = insp.prepare(images)
    n, _, H, W = x.shape
    win = check_pair(window, "window")
    step = check_pair(stride, "stride")
    if win[0] > H or win[1] > W:
        raise InputError(f"window {win[0]}x{win[1]} is larger than the {H}x{W} image; "
                         f"use a window of at most {min(H, W)}")
    bs = check_batch_size(batch_size, default=0)
    check_cancel(cancel)
    spec = insp.resolve_target(target, x)  # once: each image below gets its row
    fills = fill_values(insp, x, fill, win)
    fill_key = fill if isinstance(fill, str) else tuple(float(v) for v in torch.as_tensor(fill).flatten())
    params = {"target": spec.key(), "window": win, "stride": step, "fill": fill_key, "incremental": bool(incremental)}

    ran = []

    def compute() -> OcclusionResult:
        ran.append(True)
        result = _run(insp, x, fills, spec, win, step, fill_key, bs, progressive, callback, cancel,
                      incremental, progress)
        if not result.complete:
            raise _Stopped(result)
        return result

    try:
        result = insp.cached("attribution.occlusion", params, x, compute)
    except _Stopped as stopped:
        return stopped.result
    if callback is not None and not ran:  # served from the cache: the final result is all there is
        callback(result)
    return result


def _run(insp, x, fills, spec, win, step, fill_key, bs, progressive, callback, cancel, incremental, progress):
    n, _, H, W = x.shape
    ys, xs = grid_positions(H, win[0], step[0]), grid_positions(W, win[1], step[1])
    plans = []
    if progressive:
        coarse = (2 * step[0], 2 * step[1])
        cys, cxs = grid_positions(H, win[0], coarse[0]), grid_positions(W, win[1], coarse[1])
        if len(cys) * len(cxs) < len(ys) * len(xs) and len(cys) * len(cxs) > 1:
            plans.append((coarse, cys, cxs))
    plans.append((step, ys, xs))
    total = n * sum(len(a) * len(b) for _, a, b in plans)
    done = 0
    seen: list[dict] = [{} for _ in range(n)]   # per image: (y0, x0) -> (score, probability)
    base_scores, base_probs, used_incremental = [], [], True
    unit = spec.is_unit
    last = None

    def stopped():
        return _assemble(insp, x, fills, spec, win, (last or plans[-1])[0], *(last or plans[-1])[1:], fill_key,
                         seen, base_scores, base_probs, complete=False, incremental=used_incremental, unit=unit)
    report = progress_reporter(progress, total, "occlusion", "window")
    with insp.eval_guard(), torch.no_grad(), report:
        scorers = []
        for i in range(n):
            if is_cancelled(cancel):
                return stopped()
            check = _boxes(ys[:1], xs[:1], win, (H, W))
            scorer = _Scorer(insp, x[i:i + 1], fills[i:i + 1], spec.row(i), incremental, check)
            used_incremental &= scorer.runner is not None
            s, p = scorer.baseline()
            base_scores.append(s.cpu())
            base_probs.append(None if p is None else p.cpu())
            scorers.append(scorer)
        for plan_index, (plan_step, pys, pxs) in enumerate(plans):
            for i in range(n):
                boxes = _boxes(pys, pxs, win, (H, W))
                todo = np.array([b for b in boxes if (int(b[0]), int(b[2])) not in seen[i]]).reshape(-1, 4)
                size = bs or (64 if scorers[i].runner is not None else 32)
                if scorers[i].runner is not None and len(todo):
                    # batch windows of one alignment together: their changed rectangles have equal sizes
                    a = scorers[i].runner.alignment
                    todo = todo[np.lexsort((todo[:, 2], todo[:, 0], todo[:, 2] % a, todo[:, 0] % a))]
                for start in range(0, len(todo), size):
                    if is_cancelled(cancel):
                        return stopped()
                    chunk = todo[start:start + size]
                    s, p = scorers[i](chunk)
                    s = s.cpu().tolist()
                    p = [None] * len(s) if p is None else p.cpu().tolist()
                    for b, sv, pv in zip(chunk, s, p):
                        seen[i][(int(b[0]), int(b[2]))] = (sv, pv)
                    done += len(chunk)
                    report(done)
            last = (plan_step, pys, pxs)
            result = _assemble(insp, x, fills, spec, win, plan_step, pys, pxs, fill_key, seen, base_scores,
                               base_probs, complete=plan_index == len(plans) - 1, incremental=used_incremental,
                               unit=unit)
            if callback is not None:
                callback(result)
    return result


def _assemble(insp, x, fills, spec, win, step, ys, xs, fill_key, seen, base_scores, base_probs, complete,
              incremental, unit) -> OcclusionResult:
    """The result over the grid (ys, xs); windows not scored yet (a stopped run) are NaN."""
    n = x.shape[0]
    missing = (float("nan"), float("nan"))
    scores = torch.tensor([[[seen[i].get((int(y), int(xx)), missing)[0] for xx in xs] for y in ys]
                           for i in range(n)])
    probs = None if unit else torch.tensor(
        [[[seen[i].get((int(y), int(xx)), missing)[1] for xx in xs] for y in ys] for i in range(n)])
    classes = None if unit else tuple(int(k) for k in spec.classes.tolist())
    nan = torch.full((n - len(base_scores),), float("nan"))  # images whose baseline a stop left out
    base_scores = list(base_scores) + ([nan] if len(nan) else [])
    if not unit:
        base_probs = list(base_probs) + ([nan] if len(nan) else [])
    return OcclusionResult(
        scores=scores.float(), probabilities=None if probs is None else probs.float(),
        baseline_score=torch.cat(base_scores).float(),
        baseline_probability=None if unit else torch.cat(base_probs).float(),
        window=win, stride=step, image_size=tuple(x.shape[-2:]), fill=fill_key, target=spec.description,
        target_classes=classes, inputs=x.detach().cpu(), fill_inputs=fills.detach().cpu(),
        images=insp.pictures(x, channels_last=True), complete=complete, incremental=incremental)
