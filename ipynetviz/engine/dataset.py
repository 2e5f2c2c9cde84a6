"""A uniform view of the image collections users pass around (arrays, tensors, PIL lists, torch Datasets)."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch

from .checks import check_batch_size
from .errors import DatasetError, InputError
from .inputs import is_model_input, is_pil, pil_to_uint8, to_uint8_batch


class ImageSet:
    """Indexable images plus optional labels, streamed in batches.

    Args:
        images: uint8 (N, C, H, W) / (N, H, W, C) array or tensor, float (N, C, H, W) model input, a list of
            PIL images or uint8 arrays (sizes may differ: the inspector's transform must then resize), or a
            torch ``Dataset`` whose items are ``(image, label)`` or ``image``.
        labels: optional (N,) integer labels.
        class_names: optional names for the labels.

    Example:
        >>> s = ImageSet(np.zeros((5, 8, 8, 3), np.uint8), labels=[0, 1, 0, 1, 2])
        >>> len(s), s.images_uint8([0]).shape
        (5, (1, 3, 8, 8))
    """

    def __init__(self, images: Any, labels: Any = None, class_names: list[str] | None = None):
        self._dataset = None
        self._list = None
        self._tensor = None
        self.is_float = False
        if isinstance(images, torch.utils.data.Dataset) and not isinstance(images, torch.Tensor):
            self._dataset = images
            n = len(images)
        elif isinstance(images, (list, tuple)):
            self._list = list(images)
            n = len(self._list)
        else:
            if is_model_input(images):
                t = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
                if t.ndim != 4:
                    raise InputError(f"float model input must be (N, C, H, W), got shape {tuple(t.shape)}")
                self._tensor, self.is_float = t, True
            else:
                if not isinstance(images, (np.ndarray, torch.Tensor)):
                    raise DatasetError(f"cannot read a data set from {type(images).__name__}; pass images as an "
                                       "array (N, C, H, W), a list of PIL images, or a torch Dataset")
                arr = np.asarray(images) if not isinstance(images, torch.Tensor) else images
                if arr.ndim == 3 and arr.shape[0] != 0:  # (N, H, W) grayscale
                    arr = arr[:, None] if isinstance(arr, np.ndarray) else arr.unsqueeze(1)
                if arr.ndim == 4 and arr.shape[0] == 0:
                    raise DatasetError("the data set is empty (0 images); pass at least one image")
                self._tensor = to_uint8_batch(arr) if arr.ndim == 4 else to_uint8_batch(arr)
            n = self._tensor.shape[0]
        if n == 0:
            raise DatasetError("the data set is empty (0 images); pass at least one image")
        self._n = n
        if labels is None and self._dataset is not None:
            labels = self._dataset_labels()
        self.labels = None if labels is None else np.asarray(labels).astype(np.int64).reshape(-1)
        if self.labels is not None and len(self.labels) != n:
            raise DatasetError(f"{n} images but {len(self.labels)} labels; pass one label per image")
        self.class_names = class_names

    def _dataset_labels(self):
        first = self._dataset[0]
        if isinstance(first, (tuple, list)) and len(first) >= 2:
            return [int(self._dataset[i][1]) for i in range(len(self._dataset))]
        return None

    def __len__(self) -> int:
        return self._n

    def fingerprint(self) -> str:
        """A content hash (images and labels), computed once; the result cache keys data sets by it."""
        if getattr(self, "_fingerprint", None) is None:
            from .cache import fingerprint
            if self._tensor is not None:
                content = self._tensor
            elif self._list is not None:
                content = self._list
            else:  # a torch Dataset may be lazy or huge: key it by identity and length
                content = f"dataset:{id(self._dataset)}:{self._n}"
            self._fingerprint = fingerprint([content, self.labels])
        return self._fingerprint

    def __repr__(self) -> str:
        kind = "float" if self.is_float else "uint8"
        return f"ImageSet(n={self._n}, kind={kind}, labels={'yes' if self.labels is not None else 'no'})"

    def raw(self, idx) -> Any:
        """The items at `idx` (a slice or index list) in a form ``Inspector.prepare`` accepts."""
        if self._tensor is not None:
            if isinstance(idx, slice):
                return self._tensor[idx]
            return self._tensor[torch.as_tensor(np.asarray(idx, dtype=np.int64))]
        rng = range(self._n)[idx] if isinstance(idx, slice) else list(idx)
        if self._list is not None:
            items = [self._list[i] for i in rng]
        else:
            items = []
            for i in rng:
                it = self._dataset[i]
                items.append(it[0] if isinstance(it, (tuple, list)) else it)
        if items and isinstance(items[0], torch.Tensor) and items[0].is_floating_point():
            return torch.stack(items)
        return items

    def batches(self, batch_size: int) -> Iterator[tuple[slice, Any]]:
        """Yield ``(slice, raw_batch)`` pairs covering the set in order."""
        batch_size = check_batch_size(batch_size)
        for start in range(0, self._n, batch_size):
            sl = slice(start, min(start + batch_size, self._n))
            yield sl, self.raw(sl)

    def images_uint8(self, idx, invert: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray | list:
        """Images for display as uint8 (N, C, H, W) numpy (a list when sizes differ)."""
        raw = self.raw(idx if not isinstance(idx, int) else [idx])
        if isinstance(raw, torch.Tensor) and raw.is_floating_point():
            if invert is None:
                lo, hi = raw.amin(dim=(1, 2, 3), keepdim=True), raw.amax(dim=(1, 2, 3), keepdim=True)
                raw = ((raw - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8)
            else:
                raw = invert(raw)
            return raw.cpu().numpy()
        b = to_uint8_batch(raw) if not (isinstance(raw, list) and raw and is_pil(raw[0])) else \
            to_uint8_batch([pil_to_uint8(r) for r in raw])
        if isinstance(b, list):
            return [x.cpu().numpy() for x in b]
        return b.cpu().numpy()


def as_imageset(data: Any, labels: Any = None) -> ImageSet:
    """Any accepted data set as an :class:`ImageSet` (a tuple ``(images, labels)`` is split)."""
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, tuple) and len(data) == 2 and labels is None and not is_pil(data[0]):
        first = data[0]
        if isinstance(first, (np.ndarray, torch.Tensor, list)) and np.ndim(data[1]) == 1:
            return ImageSet(first, labels=data[1])
    return ImageSet(data, labels=labels)
