"""Adversarial and fooling images: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018).

The perturbation lives in **pixel units** (images in [0, 1]), so ``eps=8/255`` means "at most 8 grey
levels per channel" whatever mean/std normalisation the model uses: the attack works on pixels and maps
them to model input with the inspector's transform, which divides by std. Untargeted attacks push the
cross-entropy of the true (or predicted) class up; targeted ones ("fooling images") push the target
class's cross-entropy down. One step with ``step_size = eps`` is FGSM; more steps are PGD, projected onto the
L-infinity or L2 ball after every step and kept a valid image.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ipynetviz.engine import targets as _targets
from ipynetviz.engine.checks import check_positive
from ipynetviz.engine.control import check_callback_every, is_cancelled
from ipynetviz.engine.errors import InputError, SettingError

from .loop import run_model
from .results import AdversarialResult
from .space import PixelSpace, check_steps

__all__ = ["adversarial"]


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1).view(-1, 1, 1, 1)


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)


def adversarial(insp, image: Any, target: Any = None, eps: float = 8 / 255, steps: int = 10,
                norm: str = "linf", step_size: float | None = None, labels: Any = None,
                random_start: bool = False, loss: str = "ce", restarts: int = 1,
                callback: Callable | None = None, callback_every: int = 1, cancel: Any = None,
                seed: int = 0) -> AdversarialResult:
    """Perturb images within an ``eps`` ball (pixel units) to change the network's decision.

    Args:
        insp: the inspector.
        image: the images to attack, any form ``insp.prepare`` accepts.
        target: None for an untargeted attack, else a class index or one per image (fooling images).
        eps: perturbation budget in pixel units ([0, 1] per channel): the L-infinity bound (``8/255`` is 8 grey
            levels) or the L2 norm over all pixels and channels.
        steps: 1 is FGSM; more is PGD.
        norm: ``"linf"`` (sign steps) or ``"l2"`` (normalised-gradient steps).
        step_size: per step, in pixel units; default ``eps`` for FGSM and ``2.5 * eps / steps`` for PGD.
        labels: true classes for untargeted attacks and accuracy; default the clean predictions.
        random_start: start PGD from a uniform random point of the ball (seeded by ``seed``).
        loss: ``"ce"`` (cross-entropy) or ``"margin"`` (Carlini & Wagner's logit margin: the target's logit
            minus the largest other one, or the largest wrong logit minus the true one when untargeted). The
            margin does not flatten out once the softmax saturates.
        restarts: run the attack this many times; every run after the first starts from a random point of the
            ball and attacks only the images no earlier run fooled. Each image keeps the run with the largest
            margin. ``fooled_at`` then counts steps over all runs (run r's step s is ``r * steps + s``).
        callback: called with a partial result every ``callback_every`` steps.
        cancel: an Event, Ticket or callable; a stopped attack returns its partial result.

    Returns:
        An :class:`AdversarialResult` with the perturbation size, the fooled flags and after how many steps.

    Example:
        >>> import torch
        >>> from ipynetviz.engine import Inspector
        >>> torch.manual_seed(0) and None
        >>> m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
        >>> insp = Inspector(m, input_size=(3, 4, 4), device="cpu")
        >>> r = adversarial(insp, torch.rand(4, 3, 4, 4), target=2, eps=0.5, steps=20)
        >>> bool(r.linf.max() <= 0.5 + 1e-6), r.fooled.tolist()
        (True, [True, True, True, True])
    """
    steps = check_steps(steps)
    eps = check_positive(eps, "eps")
    callback_every = check_callback_every(callback_every)
    if norm not in ("linf", "l2"):
        raise SettingError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if loss not in ("ce", "margin"):
        raise SettingError(f"loss must be 'ce' or 'margin', got {loss!r}")
    restarts = check_steps(restarts, "restarts")
    step_size = (eps if steps == 1 else 2.5 * eps / steps) if step_size is None else \
        check_positive(step_size, "step_size")
    x0 = insp.prepare(image)
    n = x0.shape[0]
    space = PixelSpace(insp, channels=x0.shape[1])
    p0 = space.clamp_(space.to_pixels(x0).clone())
    k = insp.num_classes
    if isinstance(target, np.ndarray):
        target = target.tolist()
    tgt = None if target is None else _targets.class_indices(_targets.Class(target), n, k).to(x0.device)
    with insp.eval_guard(), torch.no_grad():
        clean_logits = run_model(insp.model, space.to_model(p0)).reshape(n, -1)
    clean_prob = clean_logits.softmax(1)
    clean_pred = clean_prob.argmax(1)
    if labels is None:
        lab = clean_pred
    else:
        lab = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1).to(x0.device)
        if lab.shape[0] != n:
            raise InputError(f"{lab.shape[0]} labels for {n} images; give one label per image")
        lab = _targets.class_indices(_targets.Class(tuple(lab.tolist())), n, k).to(x0.device)

    def is_fooled(pred, rows=slice(None)):
        return pred == tgt[rows] if tgt is not None else pred != lab[rows]

    def random_delta(rows: int, generator: torch.Generator) -> torch.Tensor:
        shape = (rows,) + tuple(p0.shape[1:])
        if norm == "linf":
            return (torch.rand(shape, generator=generator) * 2 - 1).to(p0) * eps
        r = torch.randn(shape, generator=generator).to(p0)
        u = torch.rand((rows, 1, 1, 1), generator=generator).to(p0)
        return r / _flat_norm(r) * eps * u

    def objective(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Per image, what the attack ascends."""
        if loss == "ce":
            if tgt is None:
                return F.cross_entropy(logits, lab[rows], reduction="none")
            return -F.cross_entropy(logits, tgt[rows], reduction="none")
        return margin(logits, rows)

    def margin(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """> 0 exactly when the image fools the network: target minus best other (targeted), best other minus
        true class (untargeted)."""
        cls = (lab if tgt is None else tgt)[rows]
        own = logits.gather(1, cls[:, None])[:, 0]
        other = logits.scatter(1, cls[:, None], float("-inf")).amax(1)
        return own - other if tgt is not None else other - own

    delta = torch.zeros_like(p0)                      # the perturbation being worked on
    best_delta = delta.clone()                        # per image, the best one any restart found
    best_margin = torch.full((n,), float("-inf"), device=x0.device)
    fooled_at = torch.full((n,), -1, dtype=torch.long, device=x0.device)
    settings = {"method": "adversarial", "eps": eps, "steps": steps, "norm": norm, "step_size": step_size,
                "targeted": tgt is not None, "random_start": bool(random_start), "seed": int(seed),
                "loss": loss, "restarts": restarts, "attack": "FGSM" if steps == 1 and restarts == 1 else "PGD"}
    state = {"done": 0, "interrupted": False, "logits": clean_logits.clone()}

    def build(logits: torch.Tensor) -> AdversarialResult:
        p = p0 + delta
        x = space.to_model(p)
        prob = logits.softmax(1)
        pred = prob.argmax(1)
        d = delta.detach()
        return AdversarialResult(
            input=x.detach().cpu(), images=space.to_uint8(x), perturbation=d.cpu(),
            linf=d.abs().reshape(n, -1).amax(1).double().cpu().numpy(),
            l2=d.reshape(n, -1).norm(dim=1).double().cpu().numpy(), labels=lab.cpu().numpy(),
            target=None if tgt is None else tgt.cpu().numpy(), clean_pred=clean_pred.cpu().numpy(),
            adv_pred=pred.cpu().numpy(), clean_prob=clean_prob.double().cpu().numpy(),
            adv_prob=prob.double().cpu().numpy(), fooled=is_fooled(pred).cpu().numpy(),
            fooled_at=fooled_at.cpu().numpy(), settings=dict(settings), interrupted=state["interrupted"],
            steps_done=state["done"])

    generator = torch.Generator().manual_seed(int(seed))
    logits_all = state["logits"]
    with insp.eval_guard(), torch.enable_grad():
        try:
            for restart in range(restarts):
                # later restarts attack only the images no earlier one fooled, from a random point of the ball
                rows = torch.arange(n, device=x0.device) if restart == 0 else \
                    torch.nonzero(best_margin <= 0).flatten()
                if rows.numel() == 0:
                    break
                base = p0[rows]
                start = torch.zeros_like(base) if restart == 0 and not random_start else \
                    random_delta(rows.numel(), generator)
                d_rows = space.clamp_(base + start) - base
                delta[rows] = d_rows
                first = torch.full((rows.numel(),), -1, dtype=torch.long, device=x0.device)
                for step in range(steps + 1):
                    d = d_rows.detach().requires_grad_(step < steps)
                    logits = run_model(insp.model, space.to_model(base + d)).reshape(rows.numel(), -1)
                    logits_all[rows] = logits.detach()
                    if step:  # this forward shows the outcome of the previous step
                        newly = is_fooled(logits.argmax(1), rows) & (first < 0)
                        first[newly] = restart * steps + step
                        if restart == 0:
                            fooled_at[rows[newly]] = first[newly]
                        if callback is not None and state["done"] % callback_every == 0:
                            callback(build(logits_all))
                    if step == steps:
                        break
                    if is_cancelled(cancel):
                        state["interrupted"] = True
                        break
                    grad, = torch.autograd.grad(objective(logits, rows).sum(), d)
                    with torch.no_grad():
                        if norm == "linf":
                            stepped = d_rows + step_size * grad.sign()
                        else:
                            stepped = d_rows + step_size * grad / _flat_norm(grad).clamp_min(1e-12)
                        d_rows = space.clamp_(base + _project(stepped, eps, norm)) - base
                        delta[rows] = d_rows
                    state["done"] += 1
                with torch.no_grad():  # keep, per image, the restart that got furthest
                    m = margin(logits_all[rows], rows)
                    better = m > best_margin[rows]
                    keep = rows[better]
                    best_margin[keep] = m[better]
                    best_delta[keep] = delta[keep]
                    if restart:
                        fooled_at[keep] = first[better]
                if state["interrupted"]:
                    break
        except KeyboardInterrupt:  # mid-step: the logits may be older than the perturbation
            state["interrupted"] = state["stale"] = True
    if restarts > 1 or state.get("stale"):
        with insp.eval_guard(), torch.no_grad():
            if restarts > 1:
                delta = best_delta
            state["logits"] = run_model(insp.model, space.to_model(p0 + delta)).reshape(n, -1)
    return build(state["logits"])
