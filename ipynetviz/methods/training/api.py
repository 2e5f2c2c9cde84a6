"""``train(model, data, ...)``: check the settings, build optimiser, schedule and recorders, start a :class:`Run`."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ...engine.checks import check_choice, check_positive, check_positive_int, check_range
from ...engine.control import check_callback_every, check_cancel
from ...engine.errors import ModelError, SettingError
from . import loop as _loop
from .data import Normalise, as_tensors, channel_stats
from .record import Evaluator, LayerRecorder
from .resolve import resolve

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "linear")


def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"``: CUDA when present, else the CPU; anything else as ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def warm_up() -> None:
    """Import now what the first torch optimiser of a process imports (``torch._dynamo``, about 1.5 s here).

    Every ``torch.optim`` constructor imports it on its first call; a lab calls this while it is being built so
    that a Start pressed at once does not wait for it.
    """
    import torch._dynamo  # noqa: F401


def make_optimizer(kind, groups, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """One of :data:`OPTIMIZERS` (or a callable ``groups -> Optimizer``) over torch-style parameter groups."""
    if callable(kind) and not isinstance(kind, str):
        return kind(groups)
    check_choice(kind, "optimizer", OPTIMIZERS)
    if kind in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(groups, lr=lr, momentum=0.0 if kind == "sgd" else momentum,
                               nesterov=kind == "nesterov", weight_decay=weight_decay)
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    return cls(groups, lr=lr, weight_decay=weight_decay)


def lr_factor(schedule, total: int, warmup: float = 0.0) -> Callable[[int], float] | None:
    """The multiplier of the base lr at each step (``LambdaLR``'s function), with a linear warm-up.

    Example:
        >>> f = lr_factor("step", total=100)
        >>> f(0), f(50), f(80)
        (1.0, 0.1, 0.010000000000000002)
    """
    if callable(schedule) and not isinstance(schedule, str):
        return schedule
    if schedule is None:
        schedule = "constant"
    check_choice(schedule, "schedule", SCHEDULES)
    warm = int(round(check_range(warmup, "warmup", 0.0, 1.0) * total))
    if schedule == "constant" and warm == 0:
        return None

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        if schedule == "linear":
            return max(0.0, 1.0 - t)
        if schedule == "step":
            return 0.1 ** ((t >= 0.5) + (t >= 0.75))
        return 1.0
    return factor


def train(model: nn.Module | Callable[[], nn.Module] | str, data=None, *, test=None, batch_norm: bool = False,
          n_train: int | None = None, n_test: int | None = None, corruption: str = "true", p: float = 1.0,
          corruption_seed: int = 0, epochs: int = 1, steps: int | None = None,
          batch_size: int = 64, optimizer="sgd", lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
          param_groups: Callable[[nn.Module], list] | None = None, schedule=None, warmup: float = 0.0,
          loss: Callable | None = None, transform="auto", augment: Callable | None = None,
          hooks: Sequence[Any] = (), param_update: Callable | None = None, frozen: Sequence[str] = (),
          eval_every: int | None = None, eval_budget: float | None = None, train_eval: int = 0,
          record_every: int | None = None,
          histogram_bins: int = 30, checkpoints: Sequence[float] = (), checkpoint_dir=None,
          max_checkpoints: int = 32, good_every: int | None = None, seed: int = 0, device="auto",
          background: bool = True, cancel=None, progress=False, callback: Callable | None = None,
          callback_every: int = 10) -> "_loop.Run":
    """Train ``model`` on ``data`` in the background; returns the :class:`Run` at once (see ``loop`` for hooks).

    Args:
        model: an ``nn.Module``, a zero-argument factory called after ``torch.manual_seed(seed)`` (the same
            seed gives the same initial weights), or a name: ``"shapes-cnn"``, ``"digits-cnn"``, ``"mlp-512"``.
        data: ``(images, labels)`` arrays or tensors (uint8 images are normalised per channel by default),
            a zoo data set name (``"shapes"``, ``"digits"``), or None: the named model's data set.
        test: ``(images, labels)`` measured at every evaluation (test loss and accuracy), or None; with a zoo
            data set, its test split.
        batch_norm: with a model name, the variant with batch norm after every conv.
        n_train, n_test: sizes of a zoo data set (shapes: 2,000 / 500 by default; digits: its split).
        corruption, p, corruption_seed: Zhang et al.'s randomization test (``corrupt.CORRUPTIONS``): labels
            corrupted with probability ``p``, random labels, shuffled or random pixels, Gaussian images.
        epochs: passes over ``data``; ``steps`` caps the optimisation steps (None: all).
        batch_size: images per step (1 to ``len(data)``); the last batch of an epoch may be smaller.
        optimizer: ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, ``"adamw"``, or ``groups -> Optimizer``.
        lr, momentum, weight_decay: the optimiser's settings (weight decay is coupled L2 except for AdamW).
        param_groups: ``model -> [{"params": [...], ...}]`` (torch's format), e.g. decay on some layers only.
        schedule: ``"constant"``, ``"cosine"``, ``"step"`` (x0.1 at 50% and 75%), ``"linear"``, or a
            ``LambdaLR`` function ``step -> factor``; ``warmup`` is a linear warm-up as a fraction of training.
        loss: ``(outputs, targets) -> scalar`` (default cross-entropy).
        transform: ``images -> model input`` applied to every batch; ``"auto"`` normalises uint8 images with
            the training set's per-channel mean and std and leaves float data as is; None: no transform.
        augment: ``(images, generator) -> images`` applied to training batches before ``transform``.
        hooks, param_update, frozen: how other labs plug in (module docstring of ``loop``).
        eval_every: steps between evaluations of ``test`` (and of ``train_eval`` training images); None: per epoch.
        eval_budget: evaluate only while evaluations take at most this share of the time (live views; the
            points then depend on timing); None: exactly every ``eval_every`` steps.
        train_eval: how many training images (the first ones, with the labels trained on) to evaluate too.
        record_every: steps between per-layer records (norms, update ratios, histograms); None: no records.
        histogram_bins: bins of the weight and gradient histograms (0: none).
        checkpoints: fractions of training in [0, 1] at which to keep the weights; ``checkpoint_dir``: on
            disk there (atomic writes) instead of in memory; at most ``max_checkpoints``.
        good_every: steps between in-memory copies of finite weights (restored if the loss becomes NaN);
            default about 50 per run.
        seed: initial weights (with a factory), data order and augmentation.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        background: train in a thread (True) or in this call (False).
        cancel, progress, callback, callback_every: the house control vocabulary; ``callback(run)``.

    Returns:
        The :class:`Run` (already finished when ``background=False``).

    Raises:
        SettingError: a setting out of range (the message names the fix).
        ModelError: a model without trainable parameters.
        RunBusyError: the model is being trained by another run.
    """
    lr = check_positive(lr, "lr")
    epochs = check_positive_int(epochs, "epochs")
    steps = None if steps is None else check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    momentum = check_range(momentum, "momentum", 0.0, 1.0, high_open=True)
    weight_decay = check_positive(weight_decay, "weight_decay", allow_zero=True)
    max_checkpoints = check_positive_int(max_checkpoints, "max_checkpoints")
    fractions = [check_range(f, "checkpoint fraction", 0.0, 1.0) for f in checkpoints]
    if len(set(fractions)) > max_checkpoints:
        raise SettingError(f"{len(set(fractions))} checkpoint fractions but max_checkpoints={max_checkpoints}; "
                           f"pass fewer fractions or max_checkpoints={len(set(fractions))}")
    callback_every = check_callback_every(callback_every)
    check_cancel(cancel)
    if not isinstance(optimizer, str) and not callable(optimizer):
        raise SettingError(f"optimizer must be one of {list(OPTIMIZERS)} or a callable, got {optimizer!r}")
    if isinstance(optimizer, str):
        check_choice(optimizer, "optimizer", OPTIMIZERS)
    dev = resolve_device(device)
    named = resolve(model, data, test, batch_norm=batch_norm, n_train=n_train, n_test=n_test,
                    corruption=corruption, p=p, corruption_seed=corruption_seed, transform=transform,
                    augment=augment)
    model, data, test, transform, augment = named.model, named.data, named.test, named.transform, named.augment
    x, y = as_tensors(data, dev, "data")
    if batch_size > len(x):
        raise SettingError(f"batch_size={batch_size} is above the {len(x)} training images; "
                           f"pass batch_size={len(x)} or less")
    test_t = as_tensors(test, dev, "test") if test is not None else None
    if transform == "auto":
        transform = Normalise(*channel_stats(x)) if x.dtype == torch.uint8 else None

    torch.manual_seed(seed)
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise ModelError(f"model must be an nn.Module or a factory returning one, got {type(model).__name__}")
        model = model()
    params = list(model.parameters())
    if not params:
        raise ModelError(f"{type(model).__name__} has no parameters to train; pass a model with weights "
                         "(e.g. ipynetviz.zoo.shapes_cnn())")
    _loop.claim(model)
    try:
        model.to(dev)
        groups = param_groups(model) if param_groups is not None else [{"params": list(model.parameters())}]
        opt = make_optimizer(optimizer, groups, lr, momentum, weight_decay)
        steps_per_epoch = math.ceil(len(x) / batch_size)
        total = min(epochs * steps_per_epoch, steps) if steps else epochs * steps_per_epoch
        factor = lr_factor(schedule, total, warmup)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor) if factor is not None else None
        evaluator = None
        if test_t is not None or train_eval:
            n_eval = min(int(train_eval), len(x))
            evaluator = Evaluator(test=test_t, train=(x[:n_eval], y[:n_eval]) if n_eval else None,
                                  every=eval_every, transform=transform, loss_fn=loss,
                                  budget=None if eval_budget is None else check_range(
                                      eval_budget, "eval_budget", 0.0, 1.0, low_open=True))
        all_hooks = list(hooks)
        if record_every is not None:
            all_hooks.insert(0, LayerRecorder(record_every, bins=histogram_bins))
        run = _loop.Run(model=model, optimizer=opt, scheduler=sched, data=(x, y),
                        loss=loss or nn.functional.cross_entropy, transform=transform, augment=augment,
                        epochs=epochs, batch_size=batch_size, steps=steps, seed=seed, device=dev, hooks=all_hooks,
                        param_update=param_update, checkpoint_fractions=fractions, checkpoint_dir=checkpoint_dir,
                        max_checkpoints=max_checkpoints,
                        good_every=good_every if good_every is not None else max(1, total // 50),
                        cancel=cancel, progress=progress, callback=callback, callback_every=callback_every,
                        evaluator=evaluator)
        run.corrupted, run.dataset, run.test, run.transform = named.corrupted, named.dataset, test_t, transform
        if frozen:
            run.freeze(*frozen)
        if not any(p.requires_grad for p in model.parameters()):
            raise ModelError("every parameter of the model is frozen (requires_grad=False); unfreeze a layer "
                             "or pass fewer names in frozen=")
    except BaseException:
        _loop.release(model)
        raise
    return run._start(background)


__all__ = ["train", "make_optimizer", "lr_factor", "resolve_device", "warm_up", "OPTIMIZERS", "SCHEDULES"]
