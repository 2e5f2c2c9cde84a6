"""Top activating image patches per unit (Zeiler & Fergus 2014, Fig. 2), from one streamed pass.

Definition used here: a channel's score on an image is its **maximum over all positions** of the feature
map, and the patch is the receptive field of the unit at that position (the first maximum in row-major
order on ties). By default each channel's top-k are **k distinct images** (one patch per image), as in the
lecture's grids: otherwise one strong image fills all k slots with overlapping patches. With
``distinct_images=False`` every (image, position) is a candidate.

The data set goes through the model once (stopping after ``layer``), all channels at once; a running top-k
per channel stays on the activations' device, so memory is O(channels * k), not O(N). Ties go to the lower
image index, then the lower position, so the result equals a plain Python scan.

Crops are cut from the images the units saw (the model input's size) by the unit's receptive field. A field
reaching past the image border is **padded** with ``pad_value`` to the full field size, so every crop of a
layer has one size and the unit sits at its centre. A layer without a spatial map (fully connected, or
without a known field) gets the whole image as its patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ipynetviz.engine.control import with_progress
from ipynetviz.engine.errors import InputError

from ._images import channel_list, crop, dataset_of, field_boxes, input_pictures, stream, warn_short
from ._topk import RunningTopK

__all__ = ["TopPatchesResult", "UnitPatches", "top_patches"]


@dataclass(frozen=True, eq=False)
class UnitPatches:
    """One channel's top patches: image indices, positions (y, x), scores, boxes and uint8 crops (k, C, h, w)."""

    channel: int
    image_indices: np.ndarray
    positions: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    crops: np.ndarray


@dataclass(frozen=True, eq=False)
class TopPatchesResult:
    """The top-k activating patches of a layer's channels over a data set.

    Attributes:
        layer: the layer scanned.
        k: patches per channel (``min(k asked, candidates)``; ``note`` says when fewer than asked).
        channels: (C,) the channels kept, in row order of the arrays below.
        scores: (C, k) activation values, descending per row.
        image_indices: (C, k) data-set index of each patch's image.
        positions: (C, k, 2) (y, x) of the unit in the feature map; -1 for layers without a spatial map.
        boxes: (C, k, 4) (y0, x0, y1, x1) in model-input pixels, end exclusive, *unclipped* (may reach past
            the image; the crop is padded there). The whole image for layers without a spatial map.
        field: the receptive field the crops use (``insp.crop_field(layer)``), or None.
        field_ignores_gates: True when that is the local field: the exact one is the whole image because of a
            squeeze-excitation gate (``insp.receptive_field(layer)`` keeps the exact one).
        images: (U, C, H, W) uint8 pictures of the distinct images referenced, at the model input's size.
        image_slots: (C, k) row of ``images`` for each patch.
        distinct_images: whether each channel's patches come from distinct images.
        pad_value: fill of crop parts outside the image.
        note: a warning text when fewer than k candidates existed, else "".
    """

    layer: str
    k: int
    channels: np.ndarray
    scores: np.ndarray
    image_indices: np.ndarray
    positions: np.ndarray
    boxes: np.ndarray
    field: object
    images: np.ndarray
    image_slots: np.ndarray
    distinct_images: bool
    pad_value: int
    note: str = ""
    field_ignores_gates: bool = False

    @property
    def spatial(self) -> bool:
        return bool((self.positions >= 0).all())

    def row(self, channel: int) -> int:
        """Row of ``channel`` in the arrays; raises a clear error for a channel that was not scanned."""
        hits = np.flatnonzero(self.channels == int(channel))
        if not len(hits):
            raise InputError(f"channel {channel} was not scanned (this result holds channels "
                             f"{self.channels[:8].tolist()}{' ...' if len(self.channels) > 8 else ''}); "
                             "call top_patches with channel=None or include it")
        return int(hits[0])

    def crops(self, channel: int) -> np.ndarray:
        """uint8 (k, C, h, w) crops of ``channel``'s patches, padded with ``pad_value`` past the border."""
        r = self.row(channel)
        return np.stack([crop(self.images[s], b, self.pad_value)
                         for s, b in zip(self.image_slots[r], self.boxes[r])])

    def for_channel(self, channel: int) -> UnitPatches:
        """Everything about one channel's patches, crops included."""
        r = self.row(channel)
        return UnitPatches(int(channel), self.image_indices[r], self.positions[r], self.scores[r],
                           self.boxes[r], self.crops(channel))

    def render(self, channel: int, ncols: int | None = None, scale: int = 1, pad: int = 2,
               with_layout: bool = False):
        """The channel's crops as one uint8 (H, W, 3) picture (with its TileLayout when ``with_layout``)."""
        from ipynetviz.render import tile

        pic, layout = tile(list(self.crops(channel)), ncols=ncols, scale=scale, pad=pad)
        return (pic, layout) if with_layout else pic

    def to_numpy(self) -> np.ndarray:
        """The scores (U, k) of each channel's top patches, best first."""
        return self.scores

    def to_dict(self) -> dict:
        """Scores, image indices, positions and boxes as arrays keyed by name."""
        return {"channels": self.channels, "scores": self.scores, "image_indices": self.image_indices,
                "positions": self.positions, "boxes": self.boxes}


def top_patches(insp, dataset, layer: str, channel=None, k: int = 9, batch_size: int | None = None,
                distinct_images: bool = True, pad_value: int = 0, progress: bool = False) -> TopPatchesResult:
    """Find each channel's k most strongly activating patches in ``dataset``, in one pass.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        dataset: anything :func:`ipynetviz.engine.as_imageset` accepts (uint8 images, float model input,
            (images, labels), PIL list, torch Dataset). Images of mixed sizes need a resizing transform.
        layer: the layer to scan.
        channel: one channel, a list of channels, or None for all (scanning all costs the same pass).
        k: patches per channel; with fewer candidates (k > N) all are returned and a warning is issued.
        batch_size: images per forward pass (default: the inspector's).
        distinct_images: one patch per image per channel (default), or any (image, position).
        pad_value: gray level of crop parts outside the image.
        progress: True for a tqdm bar, or a callable ``progress(done, total)`` called after each batch (it
            may raise to interrupt the scan, e.g. a widget's superseded request).

    Returns:
        :class:`TopPatchesResult`; ``.for_channel(c)`` gives one channel's indices, positions, scores and crops.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2))
        >>> insp = Inspector(m, input_size=(3, 16, 16), device="cpu")
        >>> images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
        >>> tp = top_patches(insp, images, "2", k=5)
        >>> tp.scores.shape, tp.crops(0).shape
        ((6, 5), (5, 3, 5, 5))
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    data = dataset_of(dataset)
    insp.module(layer)
    batches = with_progress(stream(insp, data, layer, batch_size), progress, len(data), f"top patches {layer}",
                            done_of=lambda item: item[0].stop)
    running = RunningTopK(k)
    sel = chans = None
    map_size = input_shape = None
    try:
        for sl, x, a in batches:
            input_shape = tuple(x.shape[1:])
            if sel is None:
                if a.ndim not in (2, 4):
                    raise InputError(f"layer {layer!r} outputs shape {tuple(a.shape[1:])} per image; top_patches "
                                     "needs (C, H, W) feature maps or (F,) features")
                chans = channel_list(channel, a.shape[1], layer)
                chans = list(range(a.shape[1])) if chans is None else chans
                sel = torch.tensor(chans, device=a.device)
                map_size = tuple(a.shape[2:]) if a.ndim == 4 else ()
            elif tuple(a.shape[2:]) != map_size:
                raise InputError(f"layer {layer!r} gave {tuple(a.shape[2:])} maps for images {sl.start}.. but "
                                 f"{map_size} before: the images differ in size; resize them to one size, e.g. "
                                 "Inspector(..., transform=Preprocess(mean, std, size=(H, W)))")
            a = a.index_select(1, sel) if len(chans) != a.shape[1] else a
            positions = int(np.prod(map_size)) if map_size else 1
            first = sl.start * positions
            if a.ndim == 2:
                running.update(a.t(), torch.arange(sl.start, sl.stop, device=a.device))
            elif distinct_images:
                flat = a.flatten(2)
                # amax is about twice as fast as max-with-indices on a CPU; positions are looked up afterwards
                # for the k kept entries per channel only (for all k, used for those from this batch: no shape
                # depends on the data, so nothing waits for a GPU)
                running.update(flat.amax(dim=2).t(), torch.arange(sl.start, sl.stop, device=a.device) * positions)
                ids = running.ids
                local = torch.div(ids - first, positions, rounding_mode="floor").clamp_(0, flat.shape[0] - 1)
                rows = torch.arange(ids.shape[0], device=a.device).unsqueeze(1).expand_as(ids)
                where = flat[local, rows].argmax(dim=2)  # the first maximum in row-major order
                running.ids = torch.where(ids >= first, (local + sl.start) * positions + where, ids)
            else:
                flat = a.flatten(2).permute(1, 0, 2).reshape(a.shape[1], -1)
                running.update(flat, torch.arange(first, first + flat.shape[1], device=a.device))
    finally:
        batches.close()
    scores = running.values.float().cpu().numpy()
    ids = running.ids.cpu().numpy()
    got = scores.shape[1]
    what = "images" if (distinct_images or not map_size) else "image positions"
    note = warn_short(k, got, what)
    positions = int(np.prod(map_size)) if map_size else 1
    image_indices = ids // positions
    field, field_local = insp.crop_field(layer) if map_size else (None, False)
    unique, slots = np.unique(image_indices, return_inverse=True)
    images = input_pictures(insp, data, unique.tolist(), input_shape)
    h, w = images.shape[-2:]
    if map_size and field is not None:
        pos = ids % positions
        ys, xs = pos // map_size[1], pos % map_size[1]
        yx = np.stack([ys, xs], -1)
        boxes = field_boxes(field, ys, xs)
    else:  # no spatial map or no known field: the patch is the whole image
        if map_size:
            pos = ids % positions
            yx = np.stack([pos // map_size[1], pos % map_size[1]], -1)
        else:
            yx = np.full(ids.shape + (2,), -1, np.int64)
        boxes = np.broadcast_to(np.array([0, 0, h, w], np.int64), ids.shape + (4,)).copy()
    return TopPatchesResult(layer=layer, k=got, channels=np.asarray(chans, np.int64), scores=scores,
                            image_indices=image_indices.astype(np.int64), positions=yx.astype(np.int64),
                            boxes=boxes.astype(np.int64), field=field, images=images,
                            image_slots=slots.reshape(ids.shape).astype(np.int64),
                            distinct_images=bool(distinct_images), pad_value=int(pad_value), note=note,
                            field_ignores_gates=field_local)
