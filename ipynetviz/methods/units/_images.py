"""Shared helpers: data sets, channel lists, receptive-field boxes and crops for the unit methods."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ipynetviz.engine.checks import check_batch_size
from ipynetviz.engine.dataset import ImageSet, as_imageset
from ipynetviz.engine.errors import DatasetError, InputError, TargetError


def dataset_of(dataset) -> ImageSet:
    """Any accepted data set as an ImageSet; an empty one raises :class:`DatasetError`."""
    if dataset is None:
        raise DatasetError("no data set given (None); pass images as an array (N, C, H, W), a list of PIL "
                           "images, a tuple (images, labels) or a torch Dataset")
    try:
        data = as_imageset(dataset)
    except InputError as err:
        if "empty" in str(err):
            raise DatasetError(str(err)) from err
        raise
    if len(data) == 0:
        raise DatasetError("the data set is empty (0 images); pass at least one image")
    return data


def channel_list(channel, n_channels: int, layer: str) -> list[int] | None:
    """``None`` (all channels) or a validated list of channel indices."""
    if channel is None:
        return None
    items = [channel] if isinstance(channel, (int, np.integer)) else list(channel)
    if not items:
        raise TargetError("an empty channel list; pass channel=None for all channels")
    out = []
    for c in items:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise TargetError(f"channels must be integers, got {c!r}")
        if not 0 <= int(c) < n_channels:
            raise TargetError(f"layer {layer!r} has {n_channels} channels (0..{n_channels - 1}); "
                              f"channel {int(c)} does not exist")
        out.append(int(c))
    return out


def pair(v) -> tuple[float, float]:
    """A number or a pair as (row, col)."""
    if isinstance(v, (tuple, list)):
        return v[0], v[1]
    return v, v


def field_boxes(field, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Unclipped input boxes (y0, x0, y1, x1), ends exclusive, of the units at (ys, xs).

    The same affine rule as ``ReceptiveField.box(y, x)`` without ``clip_to`` (unit (y, x)'s field starts at
    ``offset + (y, x) * stride`` and spans ``size``), vectorised, and valid for any input size the model
    accepts, not only the traced one. Fractional fields (after upsampling) are rounded outwards.
    """
    (sh, sw), (th, tw), (oh, ow) = pair(field.size), pair(field.stride), pair(field.offset)
    ys = np.asarray(ys, np.float64)
    xs = np.asarray(xs, np.float64)
    y0, x0 = oh + ys * th, ow + xs * tw
    out = np.stack([np.floor(y0), np.floor(x0), np.ceil(y0 + sh), np.ceil(x0 + sw)], axis=-1)
    return out.astype(np.int64)


def crop(image: np.ndarray, box, pad_value: int) -> np.ndarray:
    """Cut ``box`` (y0, x0, y1, x1) from a (C, H, W) image; parts outside the image are ``pad_value``."""
    y0, x0, y1, x1 = (int(v) for v in box)
    c, h, w = image.shape
    out = np.full((c, y1 - y0, x1 - x0), pad_value, dtype=image.dtype)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
    if sy1 > sy0 and sx1 > sx0:
        out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[:, sy0:sy1, sx0:sx1]
    return out


def input_pictures(insp, dataset, indices, input_shape: tuple | None = None) -> np.ndarray:
    """uint8 (U, C, H, W) pictures of data-set images at the model input's size (what the units saw).

    uint8 images of the input's size are used as given; otherwise (a resizing transform, float input) the
    model input is turned back into pictures by :meth:`Inspector.pictures`.

    Args:
        insp: the inspector whose transform makes the model input.
        dataset: anything :func:`ipynetviz.engine.as_imageset` accepts.
        indices: the images wanted.
        input_shape: (C, H, W) of the model input when already known (skips preparing the images).

    Returns:
        uint8 array (U, C, H, W).

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> insp = Inspector(nn.Sequential(nn.Conv2d(3, 2, 3)), input_size=(3, 8, 8), device="cpu")
        >>> input_pictures(insp, np.zeros((4, 8, 8, 3), np.uint8), [2, 3]).shape
        (2, 3, 8, 8)
    """
    data = dataset_of(dataset)
    indices = [int(i) for i in indices]
    if input_shape is not None and not data.is_float:
        shown = data.images_uint8(indices)
        if isinstance(shown, np.ndarray) and tuple(shown.shape[1:]) == tuple(input_shape):
            return shown
    raw = data.raw(indices)
    x = insp.prepare(raw)
    if not data.is_float:
        shown = data.images_uint8(indices)
        if isinstance(shown, np.ndarray) and shown.shape[-2:] == tuple(x.shape[-2:]) \
                and shown.shape[1] == x.shape[1]:
            return shown
    return insp.pictures(x)


def warn_short(k: int, got: int, what: str) -> str:
    """Warn (and return the note) when fewer than ``k`` results exist."""
    if got >= k:
        return ""
    note = f"asked for k={k} but only {got} {what} exist; returning {got}"
    warnings.warn(note, UserWarning, stacklevel=3)
    return note



def stream(insp, data: ImageSet, layer: str, batch_size: int | None):
    """Yield ``(index_slice, x_on_device, activations_on_device)`` for ``layer`` over the data set, in order."""
    check_batch_size(batch_size)
    for sl, x, acts in insp.iter_batches(data, [layer], batch_size=batch_size):
        yield sl, x, acts[layer]
