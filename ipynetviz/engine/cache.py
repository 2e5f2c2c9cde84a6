"""A least-recently-used result cache with a memory cap, keyed by input content."""
from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import torch


def nbytes(obj: Any) -> int:
    """Approximate memory held by a result (tensors, arrays, dataclasses, containers)."""
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(nbytes(getattr(obj, f.name)) for f in dataclasses.fields(obj)) + 64
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values()) + 64
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj) + 64
    return 64


def fingerprint(obj: Any) -> str:
    """A content hash of images, tensors, arrays, and plain values (stable across calls)."""
    h = hashlib.blake2b(digest_size=16)
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        h.update(f"T{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        h.update(f"A{obj.shape}{obj.dtype}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif hasattr(obj, "tobytes") and hasattr(obj, "mode") and hasattr(obj, "size"):  # PIL image
        h.update(f"P{obj.mode}{obj.size}".encode())
        h.update(obj.tobytes())
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for o in obj:
            _feed(h, o)
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _feed(h, obj[k])
    elif hasattr(obj, "fingerprint") and callable(obj.fingerprint):
        h.update(obj.fingerprint().encode())
    else:
        h.update(repr(obj).encode())


class ResultCache:
    """LRU cache of computed results, evicting the oldest once ``max_bytes`` is exceeded.

    Example:
        >>> c = ResultCache(max_bytes=1 << 20)
        >>> c.get_or_compute(("k",), lambda: 41 + 1), c.hits, c.misses
        (42, 0, 1)
        >>> c.get_or_compute(("k",), lambda: 0), c.hits
        (42, 1)
    """

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    @property
    def bytes_used(self) -> int:
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items

    def get(self, key, default=None):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            return default

    def put(self, key, value) -> None:
        size = nbytes(value)
        with self._lock:
            if size > self.max_bytes:
                return  # too big to keep; the caller still gets its value
            if key in self._items:
                del self._items[key]
                del self._sizes[key]
            self._items[key] = value
            self._sizes[key] = size
            while sum(self._sizes.values()) > self.max_bytes and self._items:
                old, _ = self._items.popitem(last=False)
                del self._sizes[old]

    def get_or_compute(self, key, compute: Callable[[], Any]):
        sentinel = object()
        with self._lock:
            value = self.get(key, sentinel)
        if value is not sentinel:
            return value
        self.misses += 1
        value = compute()
        self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self.hits = self.misses = 0
