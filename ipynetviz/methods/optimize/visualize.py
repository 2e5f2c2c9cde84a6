"""Class and unit visualisation: the picture a class score, a unit or a layer responds to most.

Simonyan et al. (2014) ascend a class score from the mean image with an L2 penalty; Yosinski et al. (2015)
add blur, jitter and pixel clipping so the pictures look less like noise; Erhan et al. (2009) do the same
for single units. Several objectives run as one batch, one picture each.
"""
from __future__ import annotations

from typing import Any, Callable

from ipynetviz.engine.checks import check_positive
from ipynetviz.engine.control import check_callback_every
from ipynetviz.engine.errors import SettingError

from .loop import ascend
from .objectives import bind_objectives
from .param import parametrization
from .regularizers import split_regularizers
from .results import OptimizationResult
from .space import PixelSpace, check_steps
from .transforms import standard_transforms

__all__ = ["visualize", "default_regularizers"]


def default_regularizers(insp) -> list:
    """The regularizers :func:`visualize` uses when none are given: Lucid's standard transforms scaled to
    the model's input size (see :func:`~.transforms.standard_transforms`)."""
    size = insp.input_size[-1] if insp.input_size is not None else 64
    return standard_transforms(size)


def _result(space: PixelSpace, progress, settings: dict, descriptions) -> OptimizationResult:
    x = space.to_model(progress.pixels)
    return OptimizationResult(
        input=x.cpu(), images=space.to_uint8(x), objective=progress.series("objective"),
        terms={k: progress.series(k) for k in progress.history if k != "objective"}, settings=dict(settings),
        interrupted=progress.interrupted, steps_done=progress.steps_done, descriptions=tuple(descriptions))


def visualize(insp, objective: Any, steps: int = 128, lr: float = 0.05, regularizers: Any = "default",
              init: Any = "zeros", callback: Callable[[OptimizationResult], None] | None = None,
              callback_every: int = 16, cancel: Any = None, seed: int = 0, batch: int | None = None,
              param: Any = "fourier") -> OptimizationResult:
    """Maximise an objective (a class, a unit, a layer's norm, or a sum) by gradient ascent on the picture.

    Args:
        insp: the :class:`~ipynetviz.engine.Inspector`.
        objective: ``Class(k)``, ``Unit(layer, c)``, ``LayerNorm(layer)``, a composition such as
            ``Class(3) - 1e-4 * L2()``, or a list of them, optimised together as one batch (picture i for
            objective i).
        steps: gradient steps (>= 1).
        lr: Adam step size in pixel units (pixels are in [0, 1]); > 0.
        regularizers: penalties subtracted from the objective (``1e-4 * L2()``, ``TV(0.05)``,
            ``Diversity("relu3")``) and picture operations (``Blur(0.5, every=4)``, ``Jitter(2)``, ``ClipNorm(10)``,
            ``ClipContribution(10)``, ``Pad(4)``, ``RandomScale(0.9, 1.1)``, ``RandomRotate(10)``,
            ``CenterBias()``). ``"default"``: :func:`default_regularizers` (Lucid's standard transforms scaled
            to the input size); ``None`` or ``[]``: none.
        init: ``"zeros"`` (the mean colour, model input 0), ``"noise"`` (mean plus Gaussian noise of 0.1), or
            images in any form ``insp.prepare`` accepts (one, or one per picture).
        callback: called with a partial result every ``callback_every`` steps and at the end (for live previews).
        callback_every: steps between callbacks.
        cancel: an Event, executor Ticket or callable; when it says stop, the partial result is returned
            with ``interrupted=True`` (so is a KeyboardInterrupt).
        seed: seeds the noise and the jitter.
        batch: pictures for a single objective (e.g. several noise starts); defaults to 1, or to the length
            of a ``Class`` index tuple.
        param: what is optimised: ``"fourier"`` (default; :class:`~.param.Fourier`, a 1/f-scaled spectrum
            and a sigmoid), ``"pixels"`` (pixels in [0, 1], clamped), or a :class:`~.param.Parametrization`
            such as ``Fourier(colour=images)`` (decorrelated colour from the data's covariance).

    The defaults (``Fourier()``: decay 2, no colour decorrelation as the inspector does not know its data;
    :func:`default_regularizers`: pad, jitter, scale 0.9-1.1, rotation +-10 degrees; 128 steps; lr 0.05) were
    chosen by measurement on shapes-cnn (``benchmarks/bench_feature_vis.py``, README table): all 10 class
    pictures reach softmax probability >= 0.999 with ``LogProb``, and the share of spectral power above
    half-Nyquist is 0.02 for classes and 0.11 for conv4 units (Lucent's defaults: 0.15 and 0.15; plain pixel
    ascent: 0.46; the test images: 0.07). Pass ``param="pixels", regularizers=None`` for Simonyan et al.'s
    plain ascent.

    Returns:
        An :class:`OptimizationResult`; ``result.images`` are uint8 (N, C, H, W).

    Example:
        >>> import torch
        >>> from ipynetviz.engine import Inspector, Class
        >>> from ipynetviz.methods.optimize import L2
        >>> torch.manual_seed(0) and None
        >>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        ...                         torch.nn.Linear(4 * 6 * 6, 2))
        >>> insp = Inspector(m, input_size=(3, 8, 8), device="cpu")
        >>> r = visualize(insp, Class(1) - 1e-3 * L2(), steps=20, lr=0.1, param="pixels", regularizers=None)
        >>> r.images.shape, r.objective.shape, bool(r.objective[-1, 0] > r.objective[0, 0])
        ((1, 3, 8, 8), (20, 1), True)
    """
    return _visualize(insp, objective, steps, lr, regularizers, init, callback, callback_every, cancel, seed,
                      batch, param)


def _visualize(insp, objective, steps, lr, regularizers, init, callback, callback_every, cancel, seed, batch,
               param, pixels=None, method: str = "visualize", extra: dict | None = None) -> OptimizationResult:
    """:func:`visualize` with optional starting ``pixels`` (n, C, H, W) in [0, 1] (used by multifaceted)."""
    steps = check_steps(steps)
    lr = check_positive(lr, "lr")
    callback_every = check_callback_every(callback_every)
    param = parametrization(param)
    if isinstance(regularizers, str):
        if regularizers != "default":
            raise SettingError(f"regularizers must be 'default', None or a list, got {regularizers!r}")
        regularizers = default_regularizers(insp)
    penalties, ops = split_regularizers(regularizers)
    bound = bind_objectives(insp, objective, batch, penalties)
    space = PixelSpace(insp)
    if pixels is None:
        pixels = space.initial(init, bound.n, insp.input_size, seed)
    fitted = param.bind(space, tuple(pixels.shape))
    settings = {"method": method, "steps": steps, "lr": lr, "init": init if isinstance(init, str) else "image",
                "regularizers": [repr(r) for r in (penalties + ops)], "seed": int(seed), "batch": bound.n,
                "param": param.describe(),
                "parameterisation": (param.describe() + ", Adam") if space.bounded else "model input, Adam"}
    settings.update(extra or {})

    def score(ctx):
        return bound.score(ctx), {}
    on_step = None if callback is None else (lambda pr: callback(_result(space, pr, settings, bound.descriptions)))
    progress = ascend(insp, space, pixels, score, layers=bound.layers, needs_logits=bound.needs_logits,
                      steps=steps, lr=lr, ops=ops, on_step=on_step, callback_every=callback_every, cancel=cancel,
                      seed=seed, param=fitted)
    return _result(space, progress, settings, bound.descriptions)
