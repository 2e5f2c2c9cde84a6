"""What a scan measures, and how one batch of activations folds into its mergeable state.

A measure is a small settings object (``TopPatches``, ``Correspondence``). :func:`compile_plan` turns the
measures into a *plan*: plain tuples naming layers and inspector slots, picklable, so the same plan runs
in-process and inside Ray actors. :class:`ScanState` holds one engine state per plan item and merges with
another shard's ``ScanState``; :func:`fold_batch` is the one place a batch of images becomes state.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ipynetviz.engine.checks import check_choice, check_positive_int
from ipynetviz.engine.errors import InputError, SettingError
from ipynetviz.engine.state import TopKState, topk_first

from ..correspondence._inputs import align_spatial, check_same_samples
from ..correspondence.moments import StreamingMoments

__all__ = ["TopPatches", "Correspondence", "ScanState", "compile_plan", "fold_batch"]


class TopPatches:
    """Top-k activating patches of every unit of some layers (as :func:`ipynetviz.methods.top_patches`).

    Args:
        layers: a layer name or a list of them.
        k: patches per unit (9 as in Zeiler & Fergus and OpenAI Microscope).
        distinct_images: one patch per image per unit (default) or any (image, position).

    Example:
        >>> TopPatches(["conv1", "conv2"], k=9)
        TopPatches(layers=('conv1', 'conv2'), k=9, distinct_images=True)
    """

    def __init__(self, layers, k: int = 9, distinct_images: bool = True):
        self.layers = (layers,) if isinstance(layers, str) else tuple(layers)
        if not self.layers:
            raise SettingError("TopPatches needs at least one layer; pass layers=['conv1', ...] from insp.layers")
        self.k = check_positive_int(k, "k")
        self.distinct_images = bool(distinct_images)

    def __repr__(self) -> str:
        return f"TopPatches(layers={self.layers}, k={self.k}, distinct_images={self.distinct_images})"


class Correspondence:
    """The float64 moments of a layer of the scanned model against a layer of ``other`` (or of itself).

    From them the result derives what :func:`ipynetviz.methods.compare` gives: unit correlation, matchings,
    SVCCA and linear CKA (every spatial position a sample, as Li et al. 2016).

    Args:
        other: the second network's Inspector (the scanned one itself for within-network comparisons).
        layer_a: layer of the scanned model; layer_b: layer of ``other`` (default: the same name).
        align: for maps of different sizes: None (raise), "pool" or "resize" (see ``align_spatial``).
        keep: SVCCA's SVD step.
    """

    def __init__(self, other, layer_a: str, layer_b: str | None = None, align: str | None = None, keep=0.99):
        if not hasattr(other, "iter_batches"):
            raise SettingError(f"Correspondence needs the other network's Inspector first, got "
                               f"{type(other).__name__}; e.g. Correspondence(insp_b, 'conv3')")
        self.other = other
        self.layer_a = str(layer_a)
        self.layer_b = self.layer_a if layer_b is None else str(layer_b)
        self.align = check_choice(align, "align", (None, "pool", "resize"))
        self.keep = keep

    def __repr__(self) -> str:
        return f"Correspondence(other={type(self.other.model).__name__}, {self.layer_a!r}, {self.layer_b!r})"


def compile_plan(insp, measures: Sequence[Any]) -> tuple[list, list]:
    """(inspectors, plan): slot 0 is ``insp``; plan items are ``("topk", layer, k, distinct)`` or
    ``("moments", slot_b, layer_a, layer_b, align)``. Layers are checked here (LayerNotFoundError)."""
    if isinstance(measures, (TopPatches, Correspondence)):
        measures = [measures]
    measures = list(measures or [])
    if not measures:
        raise SettingError("nothing to scan: pass what=[TopPatches(layers, k=9), Correspondence(other, layer)]")
    inspectors, plan = [insp], []
    for m in measures:
        if isinstance(m, TopPatches):
            for layer in m.layers:
                insp.module(layer)
                item = ("topk", layer, m.k, m.distinct_images)
                if any(p[:2] == item[:2] for p in plan):
                    raise SettingError(f"layer {layer!r} is asked for twice in TopPatches; list it once")
                plan.append(item)
        elif isinstance(m, Correspondence):
            insp.module(m.layer_a)
            m.other.module(m.layer_b)
            slot = next((i for i, x in enumerate(inspectors) if x is m.other), None)
            if slot is None:
                inspectors.append(m.other)
                slot = len(inspectors) - 1
            if any(p[0] == "moments" and p[2:4] == (m.layer_a, m.layer_b) for p in plan):
                raise SettingError(f"the pair ({m.layer_a!r}, {m.layer_b!r}) is asked for twice; list it once")
            plan.append(("moments", slot, m.layer_a, m.layer_b, m.align))
        else:
            raise SettingError(f"cannot scan for {m!r}; pass TopPatches(...) or Correspondence(...) objects")
    return inspectors, plan


def layers_by_slot(inspectors, plan) -> list[list[str]]:
    """The layers each inspector must capture."""
    out: list[list[str]] = [[] for _ in inspectors]
    for item in plan:
        if item[0] == "topk":
            out[0].append(item[1])
        else:
            out[0].append(item[2])
            out[item[1]].append(item[3])
    return [list(dict.fromkeys(x)) for x in out]


def plan_key(item) -> tuple:
    return ("topk", item[1]) if item[0] == "topk" else ("moments", item[2], item[3])


class ScanState:
    """Everything a shard has seen: one engine state per plan item, images counted, files skipped.

    ``merge`` folds another shard's state in; the merged state does not depend on how the data set was cut.
    """

    def __init__(self, plan):
        self.plan = list(plan)
        self.parts = {plan_key(p): (TopKState(p[2]) if p[0] == "topk" else StreamingMoments())
                      for p in self.plan}
        self.n_images = 0
        self.n_files = 0
        self.skipped: list[tuple[str, str]] = []
        self.map_sizes: dict[str, tuple] = {}
        self.input_shape: tuple | None = None

    def merge(self, other: "ScanState") -> "ScanState":
        if set(other.parts) != set(self.parts):
            raise InputError("cannot merge scan states of different measures; scan every shard with the same what=")
        for key, part in self.parts.items():
            part.merge(other.parts[key])
        self.n_images += other.n_images
        self.n_files += other.n_files
        self.skipped.extend(other.skipped)
        for layer, size in other.map_sizes.items():
            self.map_sizes.setdefault(layer, size)
        self.input_shape = self.input_shape or other.input_shape
        return self

    def cpu(self) -> "ScanState":
        for part in self.parts.values():
            part.cpu()
        return self


def _topk_update(state: TopKState, a: torch.Tensor, ids: torch.Tensor, distinct: bool) -> tuple:
    """Candidates of one batch: (channel, image) maxima with their first position, or every position."""
    if a.ndim == 2:
        state.update(a.t(), ids)
        return ()
    if a.ndim != 4:
        raise InputError(f"a layer with outputs of shape {tuple(a.shape[1:])} per image cannot be scanned for "
                         "top patches; pick a layer with (C, H, W) maps or (F,) features")
    positions = a.shape[2] * a.shape[3]
    flat = a.flatten(2)
    if distinct:
        # Each channel's k best images of this batch first (amax is about twice as fast as max-with-indices),
        # then the position of the maximum for those k only: the first maximum in row-major order, the rule
        # top_patches uses. Every image appears once per channel, so ties between images go by image id.
        order = ids.sort(stable=True).indices
        values, cols = topk_first(flat.amax(dim=2).t().index_select(1, order), state.k)
        local = order[cols]  # (C, k) rows of this batch
        rows = torch.arange(a.shape[1], device=a.device).unsqueeze(1)
        where = flat[local, rows].argmax(dim=2)
        state.update(values, ids[local] * positions + where)
    else:
        cand = (ids.unsqueeze(1) * positions + torch.arange(positions, device=a.device)).reshape(-1)
        state.update(flat.permute(1, 0, 2).reshape(a.shape[1], -1), cand)
    return tuple(a.shape[2:])


def fold_batch(state: ScanState, inspectors, plan, inputs: Sequence[Any], ids: np.ndarray) -> ScanState:
    """Run one batch through the inspectors and fold it into ``state``.

    Args:
        inputs: per inspector slot, the batch as that inspector accepts it (uint8 images, or float model
            input already made by its transform on a CPU stage).
        ids: (n,) data-set indices of the batch's images.
    """
    wanted = layers_by_slot(inspectors, plan)
    acts: list[dict] = [{} for _ in inspectors]
    for slot, insp in enumerate(inspectors):
        if not wanted[slot]:
            continue
        batch = inputs[slot] if slot < len(inputs) else inputs[0]
        for _, x, got in insp.iter_batches(batch, wanted[slot], batch_size=len(ids)):
            acts[slot] = got
            if slot == 0:
                state.input_shape = tuple(x.shape[1:])
    device = next(iter(acts[0].values())).device
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=device)
    for item in plan:
        part = state.parts[plan_key(item)]
        if item[0] == "topk":
            size = _topk_update(part, acts[0][item[1]], ids_t, item[3])
            if state.map_sizes.setdefault(item[1], size) != size:
                raise InputError(f"layer {item[1]!r} gave {size} maps but {state.map_sizes[item[1]]} before: the "
                                 "images differ in size; give the Inspector a transform that resizes, e.g. "
                                 "Preprocess(mean, std, size=(H, W))")
        else:
            _, slot, la, lb, align = item
            a, b = acts[0][la], acts[slot][lb].to(device)
            if a.ndim == 4 and b.ndim == 4 and a.shape[2:] != b.shape[2:] and align is not None:
                a, b = align_spatial(a, b, mode=align)
            check_same_samples(a, b)
            part.update(a, b)
    state.n_images += len(ids)
    return state
