"""The answer of a scan: top patches per layer and correspondences per layer pair, built from merged state."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ipynetviz.engine.cache import fingerprint

from ..correspondence.compare import CorrespondenceResult, result_from_moments
from ..units._images import field_boxes, warn_short
from ..units.patches import TopPatchesResult
from .measures import ScanState

__all__ = ["ScanResult", "model_fingerprint"]


def model_fingerprint(insp) -> str:
    """A content hash of the model: its class, parameters, buffers and input size (names a saved scan's model)."""
    state = {k: v for k, v in insp.model.state_dict().items()}
    return fingerprint([type(insp.model).__name__, insp.input_size, state])


@dataclass(frozen=True, eq=False)
class ScanResult:
    """What a scan found.

    Attributes:
        top_patches: {layer: :class:`~ipynetviz.methods.units.TopPatchesResult`} (crops via ``.crops(unit)``).
        correspondence: {(layer_a, layer_b): :class:`~ipynetviz.methods.correspondence.CorrespondenceResult`}.
        moments: {(layer_a, layer_b): the merged float64 moments behind it}.
        n_images: images scanned; n_files: items looked at (images + skipped files).
        skipped: ((relative path, reason), ...) of files that could not be read.
        complete: False when the scan was cancelled (the result covers the images scanned so far).
        engine: "local" or "ray".
        model_fingerprint: content hash naming the model's version (``dataset_fingerprint`` names the data's).
        dataset: where the images came from (a folder path, or "N in-memory images").
        labels: (N,) labels of the data set when known (indexed by image id), else None.
    """

    top_patches: dict
    correspondence: dict
    moments: dict
    n_images: int
    n_files: int
    skipped: tuple
    complete: bool
    engine: str
    model_fingerprint: str
    dataset: str
    labels: np.ndarray | None = None
    notes: tuple = field(default=())
    source: object = field(default=None, repr=False)

    @property
    def dataset_fingerprint(self) -> str:
        """The data set's content hash (a folder's listing; in-memory images' bytes), computed when first asked."""
        return self.source.fingerprint()

    def to_numpy(self) -> np.ndarray:
        """The first measure's array: top-patch scores (units, k), else the first correlation matrix."""
        for r in self.top_patches.values():
            return r.to_numpy()
        for r in self.correspondence.values():
            return r.to_numpy()
        return np.zeros((0, 0))

    def save(self, folder, crops: bool = True):
        """Write a dataset-examples folder (see :func:`ipynetviz.methods.scan.save_examples`)."""
        from .examples import save_examples
        return save_examples(self, folder, crops=crops)


def _patches(insp, source, state: ScanState, layer: str, distinct: bool, k: int) -> TopPatchesResult:
    values, ids = state.parts[("topk", layer)].result()
    map_size = state.map_sizes.get(layer, ())
    positions = int(np.prod(map_size)) if map_size else 1
    image_indices = ids // positions
    note = warn_short(k, values.shape[1], "images" if (distinct or not map_size) else "image positions")
    unique, slots = np.unique(image_indices, return_inverse=True)
    from .source import pictures_of
    images = pictures_of(insp, source, unique.tolist(), state.input_shape) if unique.size else \
        np.zeros((0,) + tuple(state.input_shape or (3, 1, 1)), np.uint8)
    h, w = images.shape[-2:]
    field_ = insp.receptive_field(layer) if map_size else None
    if map_size:
        pos = ids % positions
        ys, xs = pos // map_size[1], pos % map_size[1]
        yx = np.stack([ys, xs], -1)
        boxes = field_boxes(field_, ys, xs) if field_ is not None else \
            np.broadcast_to(np.array([0, 0, h, w], np.int64), ids.shape + (4,)).copy()
    else:
        yx = np.full(ids.shape + (2,), -1, np.int64)
        boxes = np.broadcast_to(np.array([0, 0, h, w], np.int64), ids.shape + (4,)).copy()
    return TopPatchesResult(layer=layer, k=values.shape[1], channels=np.arange(values.shape[0], dtype=np.int64),
                            scores=values.astype(np.float32), image_indices=image_indices.astype(np.int64),
                            positions=yx.astype(np.int64), boxes=boxes.astype(np.int64), field=field_,
                            images=images, image_slots=slots.reshape(ids.shape).astype(np.int64),
                            distinct_images=distinct, pad_value=0, note=note)


def correspondence_from_moments(acc, layer_a: str, layer_b: str, n_images: int, keep=0.99) -> CorrespondenceResult:
    """What :func:`ipynetviz.methods.compare` reports, from merged moments (an undefined CKA becomes a note)."""
    return result_from_moments(acc, layer_a, layer_b, n_images, keep, cka_errors="note")


def build_result(insp, source, state: ScanState, keeps: dict, complete: bool, engine: str,
                 model_fp: str) -> ScanResult:
    """Assemble the result from a merged state (crops are read back from the data set on the driver)."""
    top, corr, moments, notes = {}, {}, {}, []
    for item in state.plan:
        if item[0] == "topk":
            if state.n_images:
                top[item[1]] = _patches(insp, source, state, item[1], item[3], item[2])
        else:
            _, _, la, lb, _ = item
            acc = state.parts[("moments", la, lb)]
            moments[(la, lb)] = acc
            if acc.n_samples >= 2:
                corr[(la, lb)] = correspondence_from_moments(acc, la, lb, state.n_images, keeps.get((la, lb), 0.99))
            else:
                notes.append(f"correspondence {la} / {lb}: fewer than 2 samples scanned")
    return ScanResult(top_patches=top, correspondence=corr, moments=moments, n_images=state.n_images,
                      n_files=state.n_files, skipped=tuple(sorted(state.skipped)), complete=complete, engine=engine,
                      model_fingerprint=model_fp, dataset=source.describe(), labels=source.labels,
                      notes=tuple(notes), source=source)

