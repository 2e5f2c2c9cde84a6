"""How transferable are features? (Yosinski, Clune, Bengio & Lipson, NIPS 2014, Fig. 2) on a teaching data set.

The classes are split into halves A and B. ``baseA`` and ``baseB`` are trained on their half. For every ``n``, a
network for B gets its first ``n`` weight layers copied from baseB (``BnB``, a "selffer") or from baseA (``AnB``,
a transfer), either frozen or fine-tuned with the rest (``BnB+``, ``AnB+``); the layers above ``n`` start from a
fresh random initialisation and train on B. Every network trains through the one training loop with the same
settings and is scored on B's test images (baseA on A's).

All inputs share one normalisation (the whole training set's per-channel statistics), so a layer copied from A
sees inputs scaled as it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ...engine.checks import check_positive_int
from ...engine.control import check_callback_every, check_cancel, is_cancelled, progress_reporter
from ...engine.errors import InputError, PartialResultError, SettingError
from ..training import evaluate, train
from ..training.data import Normalise, channel_stats
from ..training.models import build
from ..training.resolve import DATASETS, zoo_data
from .freeze import weight_layers

__all__ = ["CONDITIONS", "PAPER_FIG2", "TransferRecord", "TransferResult", "split_classes", "transfer_experiment"]

CONDITIONS = ("baseA", "baseB", "BnB", "BnB+", "AnB", "AnB+")

# Yosinski et al. 2014, Fig. 2 (ImageNet halves of 500 classes, an 8-layer Caffe net; top-1 accuracy on the validation
# images of the target half). Not read off the plot: recomputed on 2026-12-03 from the authors' own training logs,
# published with their plotting notebook in github.com/yosinski/convnet_transfer (``results/*/*.gz``; commit 9838c27),
# the way that notebook (``plots/transfer_plots.ipynb``: ``get_mean_best``, ``getline``) draws the figure's lines:
# per network, the mean of its 10 highest validation accuracies; per n, the mean over networks. As that notebook does,
# "baseB" pools the base networks of both halves of all four splits (8), "BnB" the selffers (A->A; 4 per n),
# "AnB" the transfers both ways (8 per n). The repository lacks some fine-tuned logs, so BnB+ and AnB+ rest on 1-2
# networks per n (``"networks"``); the paper's figure may include more. Over n = 1..7 these give AnB+ 1.7 points above
# baseB (+1.6 is the figure usually quoted from the paper's text; the paper's text itself could not be opened here).
PAPER_FIG2 = {
    "n": (1, 2, 3, 4, 5, 6, 7),
    "baseB": 0.6251,
    "BnB": (0.6267, 0.6235, 0.6211, 0.6048, 0.5935, 0.6188, 0.6232),
    "BnB+": (0.6177, 0.6215, 0.6313, 0.6287, 0.6301, 0.6276, 0.6266),
    "AnB": (0.6282, 0.6239, 0.6189, 0.5998, 0.5780, 0.5806, 0.5425),
    "AnB+": (0.6373, 0.6358, 0.6426, 0.6398, 0.6446, 0.6460, 0.6465),
    "networks": {"baseB": 8, "BnB": (4,) * 7, "BnB+": (1, 1, 2, 1, 2, 2, 1), "AnB": (8,) * 7,
                 "AnB+": (1, 2, 2, 2, 1, 1, 1)},
    "source": "github.com/yosinski/convnet_transfer results/ logs, commit 9838c27 (the authors' Fig. 2 data)",
}


@dataclass(frozen=True)
class TransferRecord:
    """One trained network: its condition, n (0 for the bases), seed, test accuracy and conv1 filters."""

    condition: str
    n: int
    seed: int
    accuracy: float
    classes_a: tuple[int, ...]
    classes_b: tuple[int, ...]
    conv1: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, eq=False)
class TransferResult:
    """Every network of a transfer experiment, and their table (mean and spread over seeds).

    Attributes:
        records: one :class:`TransferRecord` per trained network, in training order.
        n_layers: the n values.
        seeds: the repetitions.
        layers: the network's weight layers (n counts from the bottom of these).
        complete: False when stopped (the finished networks are kept).
        notes: runs that failed or diverged.
    """

    records: tuple[TransferRecord, ...]
    n_layers: tuple[int, ...]
    seeds: tuple[int, ...]
    layers: tuple[str, ...]
    complete: bool = True
    notes: tuple[str, ...] = ()

    def accuracies(self, condition: str, n: int = 0) -> np.ndarray:
        """The accuracies of ``condition`` at ``n`` over seeds (n ignored for the bases)."""
        base = condition in ("baseA", "baseB")
        return np.array([r.accuracy for r in self.records if r.condition == condition and (base or r.n == n)])

    def table(self) -> list[dict]:
        """Rows ``{condition, n, mean, std, count}`` (std over seeds, 0 with one seed; NaN with none yet)."""
        rows = []
        for cond in CONDITIONS:
            for n in ((0,) if cond.startswith("base") else self.n_layers):
                acc = self.accuracies(cond, n)
                rows.append({"condition": cond, "n": n, "mean": float(acc.mean()) if acc.size else float("nan"),
                             "std": float(acc.std()) if acc.size else float("nan"), "count": int(acc.size)})
        return rows

    def to_numpy(self) -> np.ndarray:
        """Mean accuracy (4, len(n_layers)): rows BnB, BnB+, AnB, AnB+."""
        return np.array([[self.accuracies(c, n).mean() if self.accuracies(c, n).size else np.nan
                          for n in self.n_layers] for c in CONDITIONS[2:]])

    def __str__(self) -> str:
        lines = [f"{'':6s}" + "".join(f"{'n=' + str(n):>14s}" for n in self.n_layers)]
        for cond in CONDITIONS[2:]:
            cells = []
            for n in self.n_layers:
                a = self.accuracies(cond, n)
                cells.append(f"{a.mean():.3f}+-{a.std():.3f}" if a.size else "-")
            lines.append(f"{cond:6s}" + "".join(f"{c:>14s}" for c in cells))
        for cond in ("baseA", "baseB"):
            a = self.accuracies(cond)
            lines.append(f"{cond}: {a.mean():.3f} +- {a.std():.3f}" if a.size else f"{cond}: -")
        return "\n".join(lines)


def split_classes(classes: Sequence[int], split=None, seed: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two class halves: ``split=(A, B)`` checked, or (None) a random half per ``seed`` as in the paper.

    Example:
        >>> split_classes(range(4), ([0, 1], [2, 3]))
        ((0, 1), (2, 3))
        >>> a, b = split_classes(range(10), seed=0); len(a), len(b), sorted(a + b) == list(range(10))
        (5, 5, True)
    """
    classes = sorted(int(c) for c in classes)
    if split is None:
        if len(classes) < 2:
            raise InputError(f"the data have {len(classes)} class; a transfer split needs at least 2")
        perm = np.random.default_rng(seed).permutation(classes)
        half = len(classes) // 2
        return tuple(sorted(int(c) for c in perm[:half])), tuple(sorted(int(c) for c in perm[half:]))
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise InputError(f"split must be a pair (classes_A, classes_B), got {split!r}")
    a, b = (tuple(sorted(int(c) for c in half)) for half in split)
    for name, half in (("A", a), ("B", b)):
        if not half:
            raise InputError(f"half {name} of the split is empty; give each half at least one class, e.g. "
                             f"split=({classes[:len(classes) // 2]}, {classes[len(classes) // 2:]})")
        unknown = sorted(set(half) - set(classes))
        if unknown:
            raise InputError(f"half {name} names classes {unknown} that the data do not have (classes: {classes})")
    both = sorted(set(a) & set(b))
    if both:
        raise InputError(f"classes {both} are in both halves; a transfer split needs disjoint halves")
    return a, b


def _subset(x, y, classes):
    mask = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    return x[mask], np.array([relabel[int(c)] for c in y[mask]], dtype=np.int64)


def _data(data, n_train, n_test):
    if isinstance(data, str):
        if data not in DATASETS:
            raise SettingError(f"data must be one of {list(DATASETS)} or ((x, y), (x_test, y_test)), got {data!r}")
        return zoo_data(data, n_train, n_test)
    try:
        (x, y), (xt, yt) = data
    except (TypeError, ValueError):
        raise InputError("data must be a zoo name or ((x_train, y_train), (x_test, y_test))") from None
    as_np = lambda v: v.cpu().numpy() if torch.is_tensor(v) else np.asarray(v)  # noqa: E731
    return (as_np(x), as_np(y)), (as_np(xt), as_np(yt))


def _prefix(model: nn.Module, layers: Sequence[str], n: int) -> list[str]:
    """Leaf modules with parameters or buffers below weight layer ``n`` (the copied, maybe frozen, part)."""
    stop = layers[n] if n < len(layers) else None
    out = []
    for name, m in model.named_modules():
        if not name or list(m.children()):
            continue
        if name == stop:
            break
        if list(m.parameters(recurse=False)) or list(m.buffers(recurse=False)):
            out.append(name)
    return out


def _copy_prefix(target: nn.Module, source_state: dict, names: Sequence[str]) -> None:
    state = target.state_dict()
    for key in state:
        if key.rpartition(".")[0] in names:
            state[key] = source_state[key].clone()
    target.load_state_dict(state)


def transfer_experiment(data="digits", split=None, n_layers: Sequence[int] | None = None,
                        seeds: Sequence[int] = (0,), *, model="digits-cnn", epochs: int = 4,
                        batch_size: int = 64, optimizer: str = "adam", lr: float = 2e-3, weight_decay: float = 0.0,
                        n_train: int | None = None, n_test: int | None = None, device: Any = "cpu",
                        cancel=None, progress=False, callback: Callable | None = None, callback_every: int = 1,
                        **train_kwargs) -> TransferResult:
    """baseA, baseB, BnB, BnB+, AnB and AnB+ for every n (Yosinski et al. 2014) over seeds.

    Args:
        data: a zoo data set name ("digits", "shapes") or ``((x, y), (x_test, y_test))``.
        split: ``(classes_A, classes_B)`` (checked: non-empty, disjoint, known), or None: a random half per seed.
        n_layers: the n values, each 1 to (weight layers - 1) (default: all of them).
        seeds: repetitions; each has its own split (when random), initial weights and data order.
        model: "digits-cnn", "shapes-cnn", or ``num_classes -> nn.Module``.
        epochs, batch_size, optimizer, lr, weight_decay, **train_kwargs: every network's training settings.
        n_train, n_test: sizes of a zoo data set.
        device: where to train.
        cancel, progress, callback, callback_every: the house control vocabulary counted in networks;
            ``callback(partial TransferResult)`` as networks finish.

    Returns:
        A :class:`TransferResult` (``str(result)`` prints the table; ``.table()`` gives rows).

    Raises:
        InputError: a bad split; SettingError: n out of range (both before any network trains).
        PartialResultError: a network failed (an error of the model, the loop or the device); its ``partial``
            is the :class:`TransferResult` of the networks finished before it (``complete=False``), and the
            original error is its ``__cause__``. A KeyboardInterrupt returns that partial result instead.

    Example:
        >>> x = torch.randn(80, 1, 6, 6); y = (torch.arange(80) % 4)
        >>> x[:, 0, 0, 0] += y * 2.0
        >>> net = lambda k: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, k))
        >>> r = transfer_experiment(((x, y), (x, y)), ([0, 1], [2, 3]), [1], model=net, epochs=1, batch_size=20)
        >>> [row["condition"] for row in r.table()], r.complete
        (['baseA', 'baseB', 'BnB', 'BnB+', 'AnB', 'AnB+'], True)
    """
    check_cancel(cancel)
    callback_every = check_callback_every(callback_every)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise SettingError("seeds is empty; pass seeds=(0,) or more")
    for key in ("frozen", "hooks", "test", "transform", "seed"):
        if key in train_kwargs:
            raise SettingError(f"transfer_experiment sets {key}= itself for every network; leave it out")
    (x, y), (xt, yt) = _data(data, n_train, n_test)
    if isinstance(model, str):
        name = model
        factory = lambda k: build(name, num_classes=k)  # noqa: E731
    elif callable(model):
        factory = model
    else:
        raise SettingError(f"model must be a zoo name or a function num_classes -> nn.Module, got {model!r}")
    layers = weight_layers(factory(2))
    if len(layers) < 2:
        raise SettingError(f"the model has {len(layers)} weight layer; transfer needs at least 2")
    n_layers = tuple(range(1, len(layers))) if n_layers is None else tuple(int(n) for n in n_layers)
    for n in n_layers:
        if not 1 <= n <= len(layers) - 1:
            raise SettingError(f"n={n} but the network has {len(layers)} weight layers {layers}; n must be 1 to "
                               f"{len(layers) - 1} (the top layer is always trained for B)")
    classes = np.unique(y)
    splits = [split_classes(classes, split, s) for s in seeds]  # every split checked before any training
    transform = Normalise(*channel_stats(x)) if x.dtype == np.uint8 else None
    dev = torch.device(device)
    settings = dict(epochs=check_positive_int(epochs, "epochs"), batch_size=batch_size, optimizer=optimizer, lr=lr,
                    weight_decay=weight_decay, transform=transform, device=dev, background=False, cancel=cancel,
                    **train_kwargs)
    total = len(seeds) * (2 + 4 * len(n_layers))
    records: list[TransferRecord] = []
    notes: list[str] = []

    def result(complete: bool) -> TransferResult:
        return TransferResult(tuple(records), n_layers, seeds, tuple(layers), complete, tuple(notes))

    def fit(make, train_set, test_set, seed, frozen=()):
        run = train(make, train_set, test=None, frozen=frozen, seed=seed, **settings)
        if not run.complete:
            if run.error:
                notes.append(run.error)
            return run, None
        xt_, yt_ = (torch.as_tensor(v).to(dev) for v in test_set)
        return run, evaluate(run.model, xt_, yt_, transform=transform)[1]

    for a, b in splits:  # every half checked before any network trains, so no finished network is lost to it
        for half, classes in (("A", a), ("B", b)):
            count = int(np.isin(y, classes).sum())
            if count < batch_size:
                raise InputError(f"half {half} has {count} training images, fewer than batch_size="
                                 f"{batch_size}; pass a smaller batch_size or more data")
    where = {"at": "the start"}
    try:
        with progress_reporter(progress, total, desc="networks", unit="net") as report:
            for s_index, (seed, (a, b)) in enumerate(zip(seeds, splits)):
                data_a, data_b = _subset(x, y, a), _subset(x, y, b)
                test_a, test_b = _subset(xt, yt, a), _subset(xt, yt, b)
                bases = {}
                jobs = [("baseA", 0), ("baseB", 0)] + [(c, n) for n in n_layers for c in CONDITIONS[2:]]
                for j, (cond, n) in enumerate(jobs):
                    if is_cancelled(cancel):
                        return result(False)
                    where["at"] = f"{cond}" + (f" n={n}" if n else "") + f" seed={seed}"
                    net_seed = 1000 * seed + 10 * n + CONDITIONS.index(cond)
                    if cond.startswith("base"):
                        k = len(a) if cond == "baseA" else len(b)
                        run, acc = fit(lambda k=k: factory(k), data_a if cond == "baseA" else data_b,
                                       test_a if cond == "baseA" else test_b, net_seed)
                        if acc is not None:
                            bases[cond] = {kk: v.detach().cpu().clone() for kk, v in run.model.state_dict().items()}
                    else:
                        source = bases.get("baseA" if cond.startswith("A") else "baseB")
                        if source is None:
                            return result(False)

                        def make(n=n, source=source):
                            net = factory(len(b))
                            _copy_prefix(net, source, _prefix(net, layers, n))
                            return net
                        probe = factory(len(b))
                        frozen = () if cond.endswith("+") else tuple(_prefix(probe, layers, n))
                        run, acc = fit(make, data_b, test_b, net_seed, frozen=frozen)
                    if acc is None:
                        return result(False)
                    conv = next((m for m in run.model.modules() if isinstance(m, nn.Conv2d)), None)
                    records.append(TransferRecord(cond, n, seed, float(acc), a, b, None if conv is None
                                                  else conv.weight.detach().cpu().numpy().copy()))
                    done = s_index * len(jobs) + j + 1
                    report(done)
                    if callback is not None and done % callback_every == 0 and done < total:
                        callback(result(False))
    except KeyboardInterrupt:  # in a notebook, an interrupt keeps what finished (as cancel= does)
        notes.append(f"interrupted at {where['at']}; {len(records)} networks finished")
        return result(False)
    except Exception as err:
        raise PartialResultError(
            f"transfer_experiment failed at {where['at']} after {len(records)} finished networks: "
            f"{type(err).__name__}: {err}. The finished networks are in the error's .partial "
            f"(a TransferResult with complete=False)", partial=result(False)) from err
    out = result(True)
    if callback is not None:
        callback(out)
    return out
