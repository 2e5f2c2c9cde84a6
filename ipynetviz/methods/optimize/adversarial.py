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
from ipynetviz.engine.checks import check_choice, check_positive
from ipynetviz.engine.control import check_callback_every, is_cancelled
from ipynetviz.engine.errors import InputError

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
    check_choice(norm, "norm", ("linf", "l2"))
    check_choice(loss, "loss", ("ce", "margin"))
    restarts = check_steps(restarts, "restarts")
    step_size = (eps if steps == 1 else 2.5 * eps / steps) if step_size is None else \
        check_positive(step_size, "step_size")
    attack = _Attack(insp, image, target, labels, eps, norm, loss)
    attack.settings = {"method": "adversarial", "eps": eps, "steps": steps, "norm": norm, "step_size": step_size,
                       "targeted": attack.tgt is not None, "random_start": bool(random_start), "seed": int(seed),
                       "loss": loss, "restarts": restarts,
                       "attack": "FGSM" if steps == 1 and restarts == 1 else "PGD"}
    generator = torch.Generator().manual_seed(int(seed))
    with insp.eval_guard(), torch.enable_grad():
        try:
            for restart in range(restarts):
                rows = attack.rows_to_attack(restart)
                if rows.numel() == 0:
                    break
                start = None if restart == 0 and not random_start else attack.random_delta(rows.numel(), generator)
                first = attack.run(rows, start, restart, steps, step_size, callback, callback_every, cancel)
                attack.keep_best(rows, first, restart)
                if attack.interrupted:
                    break
        except KeyboardInterrupt:  # mid-step: the logits may be older than the perturbation
            attack.interrupted = attack.stale = True
    if restarts > 1 or attack.stale:
        attack.final_logits(use_best=restarts > 1)
    return attack.result(attack.logits)


class _Attack:
    """The state of one call: clean predictions, the perturbation, each image's best run, and the steps.

    Named steps instead of closures: ``rows_to_attack`` -> ``run`` (one PGD run over those rows) -> ``keep_best``,
    then ``result``.
    """

    def __init__(self, insp, image, target, labels, eps: float, norm: str, loss: str):
        self.insp, self.eps, self.norm, self.loss = insp, eps, norm, loss
        x0 = insp.prepare(image)
        self.n = n = x0.shape[0]
        self.device = x0.device
        self.space = PixelSpace(insp, channels=x0.shape[1])
        self.p0 = self.space.clamp_(self.space.to_pixels(x0).clone())
        k = insp.num_classes
        if isinstance(target, np.ndarray):
            target = target.tolist()
        self.tgt = None if target is None else _targets.class_indices(_targets.Class(target), n, k).to(self.device)
        with insp.eval_guard(), torch.no_grad():
            clean_logits = run_model(insp.model, self.space.to_model(self.p0)).reshape(n, -1)
        self.clean_prob = clean_logits.softmax(1)
        self.clean_pred = self.clean_prob.argmax(1)
        self.lab = self.clean_pred if labels is None else self._labels(labels, k)
        self.delta = torch.zeros_like(self.p0)          # the perturbation being worked on
        self.best_delta = self.delta.clone()            # per image, the best one any restart found
        self.best_margin = torch.full((n,), float("-inf"), device=self.device)
        self.fooled_at = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.logits = clean_logits.clone()              # the latest logits of every image
        self.done, self.interrupted, self.stale = 0, False, False
        self.settings: dict = {}

    def _labels(self, labels, k) -> torch.Tensor:
        lab = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1).to(self.device)
        if lab.shape[0] != self.n:
            raise InputError(f"{lab.shape[0]} labels for {self.n} images; give one label per image")
        return _targets.class_indices(_targets.Class(tuple(lab.tolist())), self.n, k).to(self.device)

    def is_fooled(self, pred: torch.Tensor, rows=slice(None)) -> torch.Tensor:
        return pred == self.tgt[rows] if self.tgt is not None else pred != self.lab[rows]

    def random_delta(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        """A uniform random point of the eps ball for ``rows`` images."""
        shape = (rows,) + tuple(self.p0.shape[1:])
        if self.norm == "linf":
            return (torch.rand(shape, generator=generator) * 2 - 1).to(self.p0) * self.eps
        r = torch.randn(shape, generator=generator).to(self.p0)
        u = torch.rand((rows, 1, 1, 1), generator=generator).to(self.p0)
        return r / _flat_norm(r) * self.eps * u

    def margin(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """> 0 exactly when the image fools the network: target minus best other (targeted), best other minus
        true class (untargeted)."""
        cls = (self.lab if self.tgt is None else self.tgt)[rows]
        own = logits.gather(1, cls[:, None])[:, 0]
        other = logits.scatter(1, cls[:, None], float("-inf")).amax(1)
        return own - other if self.tgt is not None else other - own

    def objective(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Per image, what the attack ascends."""
        if self.loss == "ce":
            if self.tgt is None:
                return F.cross_entropy(logits, self.lab[rows], reduction="none")
            return -F.cross_entropy(logits, self.tgt[rows], reduction="none")
        return self.margin(logits, rows)

    def rows_to_attack(self, restart: int) -> torch.Tensor:
        """All images first; later restarts attack only the images no earlier run fooled."""
        if restart == 0:
            return torch.arange(self.n, device=self.device)
        return torch.nonzero(self.best_margin <= 0).flatten()

    def run(self, rows, start, restart, steps, step_size, callback, callback_every, cancel) -> torch.Tensor:
        """One PGD run over ``rows`` from ``start`` (None: no perturbation); returns each row's first fooling step."""
        space, base = self.space, self.p0[rows]
        d_rows = space.clamp_(base + (torch.zeros_like(base) if start is None else start)) - base
        self.delta[rows] = d_rows
        first = torch.full((rows.numel(),), -1, dtype=torch.long, device=self.device)
        for step in range(steps + 1):
            d = d_rows.detach().requires_grad_(step < steps)
            logits = run_model(self.insp.model, space.to_model(base + d)).reshape(rows.numel(), -1)
            self.logits[rows] = logits.detach()
            if step:  # this forward shows the outcome of the previous step
                newly = self.is_fooled(logits.argmax(1), rows) & (first < 0)
                first[newly] = restart * steps + step
                if restart == 0:
                    self.fooled_at[rows[newly]] = first[newly]
                if callback is not None and self.done % callback_every == 0:
                    callback(self.result(self.logits))
            if step == steps:
                break
            if is_cancelled(cancel):
                self.interrupted = True
                break
            grad, = torch.autograd.grad(self.objective(logits, rows).sum(), d)
            with torch.no_grad():
                if self.norm == "linf":
                    stepped = d_rows + step_size * grad.sign()
                else:
                    stepped = d_rows + step_size * grad / _flat_norm(grad).clamp_min(1e-12)
                d_rows = space.clamp_(base + _project(stepped, self.eps, self.norm)) - base
                self.delta[rows] = d_rows
            self.done += 1
        return first

    @torch.no_grad()
    def keep_best(self, rows: torch.Tensor, first: torch.Tensor, restart: int) -> None:
        """Per image, keep the run that got furthest (largest margin)."""
        m = self.margin(self.logits[rows], rows)
        better = m > self.best_margin[rows]
        keep = rows[better]
        self.best_margin[keep] = m[better]
        self.best_delta[keep] = self.delta[keep]
        if restart:
            self.fooled_at[keep] = first[better]

    def final_logits(self, use_best: bool) -> None:
        """Logits of the perturbation returned (the best runs', or after an interrupt mid-step)."""
        with self.insp.eval_guard(), torch.no_grad():
            if use_best:
                self.delta = self.best_delta
            self.logits = run_model(self.insp.model, self.space.to_model(self.p0 + self.delta)).reshape(self.n, -1)

    def result(self, logits: torch.Tensor) -> AdversarialResult:
        n, space = self.n, self.space
        x = space.to_model(self.p0 + self.delta)
        prob = logits.softmax(1)
        pred = prob.argmax(1)
        d = self.delta.detach()
        return AdversarialResult(
            input=x.detach().cpu(), images=space.to_uint8(x), perturbation=d.cpu(),
            linf=d.abs().reshape(n, -1).amax(1).double().cpu().numpy(),
            l2=d.reshape(n, -1).norm(dim=1).double().cpu().numpy(), labels=self.lab.cpu().numpy(),
            target=None if self.tgt is None else self.tgt.cpu().numpy(), clean_pred=self.clean_pred.cpu().numpy(),
            adv_pred=pred.cpu().numpy(), clean_prob=self.clean_prob.double().cpu().numpy(),
            adv_prob=prob.double().cpu().numpy(), fooled=self.is_fooled(pred).cpu().numpy(),
            fooled_at=self.fooled_at.cpu().numpy(), settings=dict(self.settings), interrupted=self.interrupted,
            steps_done=self.done)
