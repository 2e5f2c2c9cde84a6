"""Learning dynamics (Raghu, Gilmer, Yosinski & Sohl-Dickstein, SVCCA, NIPS 2017, Sec. 4 and Fig. 4).

Every checkpoint of a training run is compared with the final network: layer ``i`` at checkpoint ``t``
against layer ``j`` of the final network, for every pair, by SVCCA, PWCCA or linear CKA. The diagonal
``i == j`` is "how far is this layer from what it will become"; the paper finds it reaches ~1 in the lower
layers first (bottom-up convergence), which motivates freeze training.

Cost: one forward pass of the final network over the probe images (its activations kept on the device, so a
probe of 1,000 teaching images holds a few hundred MB at most), then one forward pass per checkpoint; every
pair's statistics are streamed into the correspondence package's float64 moments
(:class:`~ipynetviz.methods.correspondence.StreamingMoments`) batch by batch, so no similarity needs the
activations of a whole checkpoint at once. The final network's batches are converted to centred float64 (and
their moments computed) once, and each checkpoint's batch once per layer however many pairs it enters: memory
about three times the final activations in float32 (about 0.4 GB for relu1 of shapes-cnn over 1,000 images). Maps of different spatial sizes are compared after average-pooling
the larger one to the smaller size (as ``layer_grid`` does); a layer against itself uses every position.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ...engine.checks import check_batch_size, check_choice
from ...engine.control import check_callback_every, check_cancel, is_cancelled, progress_reporter
from ...engine.errors import InputError, ModelError
from ..correspondence import StreamingMoments, UndefinedSimilarityError
from ..correspondence._inputs import accumulation_device, align_spatial, flatten_positions
from ..correspondence.cca import cca_from_moments
from ..correspondence.cka import linear_cka_from_moments

__all__ = ["DynamicsResult", "learning_dynamics", "default_layers", "canonical_directions", "layer_codes",
           "checkpoint_states", "METHODS", "similarity_from_moments",
           "probe_tensor"]

METHODS = ("svcca", "pwcca", "cka")


@dataclass(frozen=True, eq=False)
class DynamicsResult:
    """How every layer at every checkpoint compares with the final network.

    Attributes:
        layers: the compared layers, bottom first.
        steps: (T,) optimisation steps of the checkpoints (the last one is the reference, "final").
        fractions: (T,) the same as fractions of training.
        similarity: (T, L) layer ``l`` at checkpoint ``t`` against layer ``l`` of the final network.
        grid: (T, L, L) layer ``i`` at checkpoint ``t`` (rows) against layer ``j`` of the final network
            (columns), the paper's panels; None with ``grid=False``.
        method: "svcca", "pwcca" or "cka".
        n_images: probe images.
        complete: False when stopped early (rows not reached are NaN).
        notes: pairs that could not be computed, and why.
    """

    layers: tuple[str, ...]
    steps: np.ndarray
    fractions: np.ndarray
    similarity: np.ndarray
    grid: np.ndarray | None
    method: str
    n_images: int
    complete: bool = True
    notes: tuple[str, ...] = field(default=())

    def convergence_step(self, threshold: float = 0.9) -> dict[str, int | None]:
        """Per layer, the first checkpoint step whose similarity to the final layer reaches ``threshold``."""
        out = {}
        for j, name in enumerate(self.layers):
            hit = np.flatnonzero(self.similarity[:, j] >= threshold)
            out[name] = int(self.steps[hit[0]]) if hit.size else None
        return out

    def to_numpy(self) -> np.ndarray:
        """The (checkpoints, layers) similarity to the final network."""
        return self.similarity


def probe_tensor(images, transform: Callable | None = None) -> torch.Tensor:
    """Probe images as the float model input a run trains on: uint8 through the run's ``transform``."""
    x = images if torch.is_tensor(images) else torch.as_tensor(np.asarray(images))
    if x.ndim < 2 or len(x) == 0:
        raise InputError(f"probe inputs must be a non-empty (N, C, H, W) (or (N, features)) array, got shape "
                         f"{tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return transform(x) if transform is not None else x.float() / 255.0
    return x.float()


def similarity_from_moments(acc: StreamingMoments, method: str, keep=0.99) -> float:
    """One number from a pair's moments: SVCCA mean, PWCCA value or linear CKA."""
    if method == "cka":
        return linear_cka_from_moments(acc)
    return cca_from_moments(acc, keep=keep if method == "svcca" else None, method=method).value


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardswish)


def default_layers(model: nn.Module) -> list[str]:
    """Each conv / linear layer's output after its nonlinearity (its own output when none follows), bottom first.

    The paper compares post-activation representations; a conv layer's raw output is a linear map of its input
    patches, so CCA (invariant to linear maps) would call it converged from the first step.

    Example:
        >>> from ipynetviz.zoo.models import digits_cnn
        >>> default_layers(digits_cnn())
        ['relu1', 'relu2', 'relu3', 'relu4', 'fc']
    """
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    out: list[str] = []
    for k, (name, module) in enumerate(leaves):
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        pick = name
        for later, m in leaves[k + 1:]:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                break
            if isinstance(m, _ACTIVATIONS):
                pick = later
                break
        out.append(pick)
    return out


def _signature(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def checkpoint_states(run) -> tuple[nn.Module, list[dict], np.ndarray, np.ndarray, Callable | None]:
    """(a model to load states into, the states, steps, fractions, transform) from a Run or a list of modules."""
    if hasattr(run, "checkpoints") and hasattr(run, "model"):
        ckpts = list(run.checkpoints)  # a snapshot: a run still training appends to its list
        if len(ckpts) < 2:
            raise InputError(f"the run has {len(ckpts)} checkpoint(s); learning dynamics needs at least two: "
                             "train with checkpoints=[0, 0.25, 0.5, 0.75, 1] (or wait for more while it trains)")
        states = [c.load() for c in ckpts]
        steps = np.array([c.step for c in ckpts])
        fractions = np.array([c.fraction for c in ckpts], dtype=float)
        model, transform = run.model, getattr(run, "transform", None)
    else:
        models = list(run) if isinstance(run, (list, tuple)) else None
        if not models or not all(isinstance(m, nn.Module) for m in models):
            raise InputError("pass a training Run (ipynetviz.methods.training.train(..., checkpoints=[...])) or a "
                             f"list of nn.Modules, one per checkpoint; got {type(run).__name__}")
        if len(models) < 2:
            raise InputError(f"{len(models)} network given; learning dynamics needs at least two checkpoints")
        states = [m.state_dict() for m in models]
        steps = np.arange(len(models))
        fractions = steps / (len(models) - 1)
        model, transform = models[-1], None
    ref = _signature(states[-1])
    for t, state in enumerate(states[:-1]):
        sig = _signature(state)
        if sig != ref:
            diff = sorted(set(sig) ^ set(ref)) or [k for k in ref if sig[k] != ref[k]]
            raise ModelError(f"checkpoint {t} (step {steps[t]}) has another architecture than the final network "
                             f"(first difference: {diff[0]!r}); compare checkpoints of one run, or pass "
                             "networks with the same layers and shapes")
    return model, states, steps, fractions, transform


def _check_samples(shapes: dict, layers, n_images: int, method: str) -> None:
    if n_images < 2:
        raise InputError(f"{n_images} probe image: a similarity needs at least 2 probe images (a few hundred "
                         "give stable values)")
    if method == "cka":
        return
    for name in layers:
        shape = shapes[name]
        width, n = shape[1], n_images * (int(np.prod(shape[2:])) if len(shape) > 2 else 1)
        if n - 1 < 2 * width:
            raise InputError(
                f"layer {name!r} has {width} units but the probe gives only {n} samples ({n_images} images"
                f"{' x positions' if len(shape) > 2 else ''}); {method.upper()} of a layer with itself needs more "
                f"than {2 * width} samples, else canonical correlations are 1 whatever the network computes. Use "
                f"method='cka' (defined for any number of samples) or at least {-(-(2 * width + 2) // (n // n_images))}"
                " probe images")


def _centred(t: torch.Tensor) -> tuple:
    """(centred float64 samples x units, their mean, their second moment) of one batch of one layer."""
    x = flatten_positions(t).to(accumulation_device(t), torch.float64)
    mu = x.mean(0)
    x -= mu
    return x, mu, x.T @ x


def _fold(acc: StreamingMoments, a: tuple, b: tuple) -> None:
    """``acc.update(a, b)`` from ready centred parts: the same Chan update the moments run, without converting
    the final network's batch and recomputing its moments again for every checkpoint and pair."""
    acc.update_moments(a[0].shape[0], a[1], a[2], b[1], b[2], a[0].T @ b[0])


def _pair(a: torch.Tensor, b: torch.Tensor):
    if a.ndim == 4 and b.ndim == 4 and a.shape[2:] != b.shape[2:]:
        return align_spatial(a, b, mode="pool")
    if a.ndim != b.ndim:  # a conv map against a vector layer: one sample per image on both sides
        a = a.mean((2, 3)) if a.ndim == 4 else a
        b = b.mean((2, 3)) if b.ndim == 4 else b
    return a, b


def learning_dynamics(run, data, layers: Sequence[str] | None = None, method: str = "svcca", *, keep=0.99,
                      grid: bool = True, batch_size: int | None = 250, device: Any = None, cancel=None,
                      progress=False, callback: Callable | None = None, callback_every: int = 1) -> DynamicsResult:
    """Similarity of every layer at every checkpoint to the final network (Raghu et al. 2017, Fig. 4).

    Args:
        run: a training :class:`~ipynetviz.methods.training.Run` with at least two checkpoints (the last one is
            the reference; while the run trains, that is the latest so far), or a list of ``nn.Module``
            checkpoints of one architecture, oldest first.
        data: probe images (N, C, H, W): uint8 (passed through the run's ``transform``) or float model input.
        layers: layer names, bottom first (default: :func:`default_layers`, each conv / linear layer after its
            nonlinearity).
        method: "svcca" (``keep``: the paper's 0.99 of the variance), "pwcca" or "cka" (linear CKA, defined for
            any probe size).
        keep: SVCCA's SVD step.
        grid: also compute every (layer at t, layer of the final network) pair, the paper's panels.
        batch_size: probe images per forward pass.
        device: where to run (default: the run's model's device).
        cancel, progress, callback, callback_every: the house control vocabulary, counted in checkpoints;
            ``callback(partial DynamicsResult)`` after every ``callback_every`` checkpoints.

    Returns:
        A :class:`DynamicsResult` (``complete=False`` with the rows reached so far when cancelled).

    Raises:
        InputError: fewer than two checkpoints; a probe too small for CCA on some layer (use CKA).
        ModelError: checkpoints of different architectures.

    Example:
        >>> import torch; from torch import nn
        >>> from ipynetviz.methods.training import train
        >>> x, y = torch.randn(64, 4), torch.arange(64) % 2
        >>> run = train(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (x, y), epochs=2,
        ...             batch_size=16, lr=0.1, checkpoints=[0, 0.5, 1], background=False, device="cpu")
        >>> r = learning_dynamics(run, x, ["0", "2"], method="cka")
        >>> r.similarity.shape, r.steps.tolist(), round(float(r.similarity[-1, 0]), 6)
        ((3, 2), [0, 4, 8], 1.0)
    """
    check_choice(method, "method", METHODS)
    check_cancel(cancel)
    callback_every = check_callback_every(callback_every)
    bs = check_batch_size(batch_size, default=250)
    base, states, steps, fractions, transform = checkpoint_states(run)
    model = copy.deepcopy(base).cpu()
    dev = torch.device(device) if device is not None else next(base.parameters()).device
    model.to(dev).eval()
    modules = dict(model.named_modules())
    if layers is None:
        layers = default_layers(model)
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise InputError("no layers to compare; pass layers=['conv1', 'conv2', ...]")
    for name in layers:
        if name not in modules:
            from ...engine.errors import LayerNotFoundError
            raise LayerNotFoundError(name, [n for n in modules if n])
    x = probe_tensor(data, transform)
    n_images = len(x)

    def forward(state) -> list[dict]:
        """Activations of every layer, batch by batch, kept on the device."""
        model.load_state_dict(state)
        out: list[dict] = []
        cache: dict = {}
        handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: cache.__setitem__(n, o.detach()))
                   for n in layers]
        try:
            with torch.no_grad():
                for s in range(0, n_images, bs):
                    cache = {}
                    model(x[s:s + bs].to(dev))
                    out.append(cache)
        finally:
            for h in handles:
                h.remove()
        return out

    T, L = len(states), len(layers)
    sim = np.full((T, L), np.nan)
    full = np.full((T, L, L), np.nan) if grid else None
    notes: list[str] = []
    pairs = [(i, j) for i in range(L) for j in range(L)] if grid else [(i, i) for i in range(L)]

    def result(complete: bool) -> DynamicsResult:
        return DynamicsResult(tuple(layers), steps.copy(), fractions.copy(), sim.copy(),
                              None if full is None else full.copy(), method, n_images, complete, tuple(notes))

    with progress_reporter(progress, T, desc="checkpoints", unit="ckpt") as report:
        final = forward(states[-1])
        final_parts: dict = {}  # the final network's centred float64 batches and moments, computed once
        _check_samples({n: tuple(final[0][n].shape) for n in layers}, layers, n_images, method)
        for k, t in enumerate([T - 1] + list(range(T - 1))):  # the final one first: the diagonal's anchor
            if is_cancelled(cancel):
                return result(False)
            acts = final if t == T - 1 else forward(states[t])
            accs = {p: StreamingMoments() for p in pairs}
            for b, (batch_t, batch_f) in enumerate(zip(acts, final)):
                mine: dict = {}  # this checkpoint's centred float64 batch per layer, shared by its row of pairs
                for (i, j), acc in accs.items():
                    a, f = batch_t[layers[i]], batch_f[layers[j]]
                    if a.shape != f.shape:
                        acc.update(*_pair(a, f))
                        continue
                    if i not in mine:
                        mine[i] = _centred(a)
                    if (b, j) not in final_parts:
                        final_parts[b, j] = _centred(f)
                    _fold(acc, mine[i], final_parts[b, j])
            for (i, j), acc in accs.items():
                try:
                    value = similarity_from_moments(acc, method, keep)
                except UndefinedSimilarityError as err:
                    value = np.nan
                    notes.append(f"step {steps[t]}, {layers[i]} vs final {layers[j]}: {err}")
                if full is not None:
                    full[t, i, j] = value
                if i == j:
                    sim[t, i] = value
            del acts, accs
            report(k + 1)
            if callback is not None and (k + 1) % callback_every == 0 and k + 1 < T:
                callback(result(False))
    out = result(True)
    if callback is not None:
        callback(out)
    return out



def canonical_directions(acts_a, acts_b, k: int = 2, keep=0.99) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``k`` SVCCA directions of two layers as variates over the samples (the SVCCA blog's aligned curves).

    Each layer is centred and cut to the singular directions holding ``keep`` of its variance; CCA between the
    two subspaces gives directions whose projections (unit-norm variates) correlate by ``corr``.

    Args:
        acts_a, acts_b: (n_samples, units) arrays for the same samples.
        k: directions returned (at most the smaller kept rank).
        keep: SVCCA's fraction of variance (None: all directions).

    Returns:
        ``(variates_a (n, k), variates_b (n, k), corr (k,))``, signs chosen so each pair correlates positively.

    Example:
        >>> rng = np.random.default_rng(0); z = rng.normal(size=(200, 2))
        >>> va, vb, c = canonical_directions(z @ [[1, 2], [0, 1]], -3 * z, k=2)
        >>> np.round(c, 6).tolist(), bool(np.allclose(va, vb))
        ([1.0, 1.0], True)
    """
    def basis(x):
        x = np.asarray(x, dtype=np.float64)
        x = x - x.mean(0)
        u, sv, _ = np.linalg.svd(x, full_matrices=False)
        r = int((sv > sv[0] * max(x.shape) * np.finfo(float).eps).sum()) if sv.size and sv[0] > 0 else 0
        if keep is not None and r:
            frac = np.cumsum(sv[:r] ** 2) / np.sum(sv[:r] ** 2)
            r = min(r, int((frac < keep - 1e-12).sum()) + 1)
        return u[:, :r]
    ua, ub = basis(acts_a), basis(acts_b)
    if ua.shape[1] == 0 or ub.shape[1] == 0:
        raise UndefinedSimilarityError("a layer has no varying unit on these inputs: no canonical directions")
    p, corr, qh = np.linalg.svd(ua.T @ ub)
    k = min(int(k), corr.size)
    return ua @ p[:, :k], ub @ qh[:k].T, np.clip(corr[:k], 0.0, 1.0)


def layer_codes(model: nn.Module, state: dict | None, x: torch.Tensor, layer: str,
                batch_size: int = 250) -> np.ndarray:
    """One code per image of ``layer`` (conv maps averaged over positions) with ``state`` loaded into a copy."""
    net = copy.deepcopy(model).cpu()
    if state is not None:
        net.load_state_dict(state)
    net.eval()
    module = dict(net.named_modules())[layer]
    out: list = []
    h = module.register_forward_hook(lambda m, i, o: out.append(o.detach().flatten(2).mean(2) if o.ndim > 2 else o))
    try:
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                net(x[s:s + batch_size])
    finally:
        h.remove()
    return torch.cat(out).double().numpy()
