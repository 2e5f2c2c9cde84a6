"""Where a scan's images come from: a folder of files, or anything ``as_imageset`` accepts (arrays, zoo data,
torch data sets). One interface: length, ``read(ids) -> (images, ok_ids, skipped)``, a fingerprint."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ipynetviz.engine.folder import ImageFolder

from ..units._images import dataset_of


class ArraySource:
    """In-memory images (an ImageSet): nothing is ever skipped."""

    kind = "images"

    def __init__(self, data):
        self.data = dataset_of(data)
        self.labels = self.data.labels

    def __len__(self) -> int:
        return len(self.data)

    def read(self, ids):
        ids = [int(i) for i in ids]
        contiguous = ids == list(range(ids[0], ids[-1] + 1)) if ids else False
        raw = self.data.raw(slice(ids[0], ids[-1] + 1) if contiguous else ids)  # a slice is a view, not a copy
        if not self.data.is_float:
            # PIL images and (H, W, C) arrays as one contiguous (n, C, H, W) uint8 batch (mixed sizes stay a
            # list): the memory format then does not depend on how the images were stored (see FolderSource)
            from ipynetviz.engine.inputs import is_pil, pil_to_uint8, to_uint8_batch
            if isinstance(raw, list) and raw and is_pil(raw[0]):
                raw = [pil_to_uint8(im) for im in raw]
            batch = to_uint8_batch(raw)
            raw = batch.contiguous() if isinstance(batch, torch.Tensor) else batch
        return raw, ids, []

    def fingerprint(self) -> str:
        return self.data.fingerprint()

    def describe(self) -> str:
        return f"{len(self)} in-memory images"


class FolderSource:
    """An :class:`ipynetviz.engine.folder.ImageFolder`: unreadable files are skipped and listed."""

    kind = "folder"

    def __init__(self, folder: ImageFolder):
        self.data = folder
        self.labels = folder.labels

    def __len__(self) -> int:
        return len(self.data)

    def read(self, ids):
        images, ok, skipped = self.data.read(ids)
        if isinstance(images, np.ndarray):
            # (n, C, H, W) contiguous, as in-memory images are: the model then sees the same memory format
            # in-process and on Ray (a channels-last view would pick other conv kernels, other float rounding)
            images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        return images, ok, skipped

    def fingerprint(self) -> str:
        return self.data.fingerprint()

    def describe(self) -> str:
        return str(self.data.root)


def as_source(dataset: Any, mode: str = "RGB"):
    """A folder path or :class:`ImageFolder` -> FolderSource; anything else -> ArraySource."""
    if isinstance(dataset, (ArraySource, FolderSource)):
        return dataset
    if isinstance(dataset, (str, Path)):
        return FolderSource(ImageFolder(dataset, mode=mode))
    if isinstance(dataset, ImageFolder):
        return FolderSource(dataset)
    return ArraySource(dataset)


def pictures_of(insp, source, ids, input_shape) -> np.ndarray:
    """uint8 (U, C, H, W) pictures of images ``ids`` at the model input's size (what the units saw)."""
    from ..units._images import input_pictures

    raw, ok, skipped = source.read(ids)
    if skipped:
        from ipynetviz.engine.errors import DatasetError
        raise DatasetError(f"images {skipped[:3]} could be read during the scan but not now; the folder changed "
                           "while scanning: scan it again")
    return input_pictures(insp, raw, range(len(ok)), input_shape)
