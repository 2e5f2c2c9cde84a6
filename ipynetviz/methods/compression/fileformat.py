"""The compressed model file: no pickle, checked on reading, written atomically.

Layout: 8-byte magic, uint32 header length, uint32 CRC-32 of the header, the header (zlib-compressed
JSON: architecture, per-layer sizes, Huffman tables' offsets, the payload's CRC-32), then the payload
(codebooks, Huffman code lengths and symbols, Huffman bits, raw tensors), all little-endian.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...engine.errors import InputError, ModelError
from .encode import Encoded, Huffman, LayerCode, encode
from .layers import model_of

MAGIC = b"IPNVDC\x00\x01"
FORMAT = "ipynetviz-deep-compression"
VERSION = 1


class CompressedFileError(InputError):
    """A file that is not a complete, intact ipynetviz compressed model."""


@dataclass(frozen=True)
class SavedFile:
    """What ``save_compressed`` wrote: ``path``, its size on disk, and the rate against the dense model."""

    path: Path
    file_bytes: int
    dense_bytes: int
    encoded: Encoded

    @property
    def ratio(self) -> float:
        """Dense float32 bytes / file bytes (the paper's "compression rate", from the file on disk)."""
        return self.dense_bytes / self.file_bytes


@dataclass(frozen=True)
class LoadedFile:
    """What ``load_compressed`` read: the decoded ``state`` (already in the model), sizes and time taken."""

    path: Path
    state: dict[str, torch.Tensor]
    encoded: Encoded
    file_bytes: int
    seconds: float

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Layer -> True where a weight is stored (not pruned)."""
        return {lc.name: self.state[f"{lc.name}.weight"] != 0 for lc in self.encoded.layers}


class _Payload:
    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        self.parts.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def _huff_header(payload: _Payload, h: Huffman) -> dict:
    wide = len(h.symbols) and int(h.symbols.max()) > 0xFFFF
    return {"counts": payload.add(h.counts.astype("<u4").tobytes()),
            "symbols": payload.add(h.symbols.astype("<u4" if wide else "<u2").tobytes()),
            "wide": bool(wide), "data": payload.add(h.data), "nbits": h.nbits}


def to_bytes(encoded: Encoded) -> bytes:
    """The file's bytes for an :class:`Encoded` model."""
    payload = _Payload()
    layers = []
    for lc in encoded.layers:
        entry = {"name": lc.name, "shape": list(lc.shape), "kind": lc.kind, "mode": lc.mode, "bits": lc.bits,
                 "index_bits": lc.index_bits, "n_weights": lc.n_weights, "n_kept": lc.n_kept,
                 "n_entries": lc.n_entries, "index": _huff_header(payload, lc.index)}
        if lc.mode == "codebook":
            entry["codebook"] = payload.add(lc.codebook.astype("<f4").tobytes())
            entry["weights"] = _huff_header(payload, lc.weights)
        else:
            entry["values"] = payload.add(lc.values)
        layers.append(entry)
    dense = []
    for name, arr in encoded.dense.items():
        a = np.ascontiguousarray(arr)
        dense.append({"name": name, "dtype": a.dtype.newbyteorder("<").str, "shape": list(a.shape),
                      "blob": payload.add(a.astype(a.dtype.newbyteorder("<")).tobytes())})
    body = b"".join(payload.parts)
    header = {"format": FORMAT, "version": VERSION,
              "architecture": [[n, list(s), d] for n, s, d in encoded.architecture],
              "meta": encoded.meta, "layers": layers, "dense": dense,
              "payload_bytes": len(body), "payload_crc32": zlib.crc32(body)}
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    return MAGIC + struct.pack("<II", len(head), zlib.crc32(head)) + head + body


def _blob(body: bytes, where) -> bytes:
    start, length = where
    return body[start:start + length]


def _huff(body: bytes, h: dict) -> Huffman:
    return Huffman(np.frombuffer(_blob(body, h["counts"]), "<u4"),
                   np.frombuffer(_blob(body, h["symbols"]), "<u4" if h["wide"] else "<u2"),
                   _blob(body, h["data"]), int(h["nbits"]))


def from_bytes(data: bytes, source: str = "the data") -> Encoded:
    """Parse and check a file's bytes (magic, lengths, checksums) into an :class:`Encoded` model."""
    fix = "save the model again with save_compressed(path, model)"
    if len(data) < len(MAGIC) + 8 or data[:len(MAGIC)] != MAGIC:
        what = "is empty" if not data else "does not start with the ipynetviz compressed-model signature"
        raise CompressedFileError(f"{source} {what}; it is not a file written by save_compressed ({fix})")
    head_len, head_crc = struct.unpack("<II", data[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    head = data[start:start + head_len]
    if len(head) < head_len:
        raise CompressedFileError(f"{source} is truncated ({len(data)} bytes, the header alone needs "
                                  f"{start + head_len}); {fix}")
    if zlib.crc32(head) != head_crc:
        raise CompressedFileError(f"{source} is corrupted (header checksum mismatch); {fix}")
    header = json.loads(zlib.decompress(head))
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CompressedFileError(f"{source} has format {header.get('format')!r} version {header.get('version')!r}; "
                                  f"this ipynetviz reads {FORMAT!r} version {VERSION} ({fix})")
    body = data[start + head_len:]
    if len(body) != header["payload_bytes"]:
        raise CompressedFileError(f"{source} is truncated: {len(body)} of {header['payload_bytes']} payload bytes; "
                                  f"{fix}")
    if zlib.crc32(body) != header["payload_crc32"]:
        raise CompressedFileError(f"{source} is corrupted (payload checksum mismatch); {fix}")
    layers = []
    for e in header["layers"]:
        codebook = np.frombuffer(_blob(body, e["codebook"]), "<f4").astype(np.float32) if e["mode"] == "codebook" \
            else np.zeros(0, np.float32)
        layers.append(LayerCode(e["name"], tuple(e["shape"]), e["kind"], e["mode"], e["bits"], e["index_bits"],
                                e["n_weights"], e["n_kept"], e["n_entries"], codebook,
                                _huff(body, e["weights"]) if e["mode"] == "codebook" else None,
                                _blob(body, e["values"]) if e["mode"] == "raw" else b"", _huff(body, e["index"])))
    dense = {d["name"]: np.frombuffer(_blob(body, d["blob"]), d["dtype"]).reshape(d["shape"]).copy()
             for d in header["dense"]}
    architecture = tuple((n, tuple(s), d) for n, s, d in header["architecture"])
    return Encoded(tuple(layers), dense, architecture, header.get("meta", {}))


def save_compressed(path: str | os.PathLike, model_or_encoded: Any, quantization: Any = None, **encode_kwargs
                    ) -> SavedFile:
    """Write a model (or an :class:`Encoded` one) as a compressed file; atomically (no half-written file).

    Args:
        path: where to write (its folder must exist).
        model_or_encoded: an Inspector, ``nn.Module`` or :class:`Encoded`.
        quantization, encode_kwargs: passed to :func:`~ipynetviz.methods.compression.encode.encode`.

    Returns:
        A :class:`SavedFile` with the size on disk and the compression rate.

    Example:
        >>> import tempfile, os
        >>> from ipynetviz.zoo import lenet_300_100
        >>> m = lenet_300_100()
        >>> with tempfile.TemporaryDirectory() as d:
        ...     saved = save_compressed(os.path.join(d, "m.ipnz"), m)
        ...     loaded = load_compressed(saved.path, lenet_300_100())
        >>> all(torch.equal(loaded.state[k], v) for k, v in m.state_dict().items())
        True
    """
    enc = model_or_encoded if isinstance(model_or_encoded, Encoded) else \
        encode(model_or_encoded, quantization, **encode_kwargs)
    data = to_bytes(enc)
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot save to {str(path)!r}: the folder {str(folder)!r} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); a saved model is an ordinary file (keep an existing file's mode)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return SavedFile(path, path.stat().st_size, enc.dense_bytes, enc)


def check_architecture(encoded: Encoded, model, source: str) -> None:
    """Raise a :class:`ModelError` naming the first difference between the file's model and ``model``."""
    state = model.state_dict()
    file_names = [n for n, _, _ in encoded.architecture]
    maker = encoded.meta.get("zoo") or encoded.meta.get("model") or "the model it was saved from"
    fix = f"load it into {maker}"
    missing = [n for n in file_names if n not in state]
    extra = [n for n in state if n not in file_names]
    if missing or extra:
        raise ModelError(f"{source} was saved from another architecture: the file has {missing[:3] or 'no'} "
                         f"tensors the model lacks and the model has {extra[:3] or 'no'} tensors the file lacks; "
                         f"{fix}")
    for name, shape, dtype in encoded.architecture:
        if tuple(state[name].shape) != tuple(shape):
            raise ModelError(f"{source} was saved from another architecture: {name} is {tuple(shape)} in the file "
                             f"but {tuple(state[name].shape)} in the model; {fix}")


def load_compressed(path: str | os.PathLike, model_or_inspector: Any) -> LoadedFile:
    """Read a compressed file into a ready model (exact weights); on any error the model is left unchanged.

    Args:
        path: a file written by :func:`save_compressed`.
        model_or_inspector: a model of the same architecture (e.g. ``zoo.lenet_5()``), or its Inspector.

    Returns:
        A :class:`LoadedFile`; the model now holds the decoded weights.

    Raises:
        CompressedFileError: not such a file, truncated or corrupted.
        ModelError: the file was made for another architecture.
    """
    t0 = time.perf_counter()
    model = model_of(model_or_inspector)
    path = Path(path)
    if not path.is_file():
        raise CompressedFileError(f"no file {str(path)!r}; give the path save_compressed wrote")
    data = path.read_bytes()
    enc = from_bytes(data, source=f"{path.name!r}")
    check_architecture(enc, model, f"{path.name!r}")
    state = enc.state_dict()
    current = model.state_dict()
    with torch.no_grad():
        for name, value in state.items():  # everything decoded and checked before the model is touched
            current[name].copy_(value.to(current[name].device, current[name].dtype))
    return LoadedFile(path, state, enc, len(data), time.perf_counter() - t0)


__all__ = ["save_compressed", "load_compressed", "to_bytes", "from_bytes", "CompressedFileError", "SavedFile",
           "LoadedFile", "MAGIC"]
