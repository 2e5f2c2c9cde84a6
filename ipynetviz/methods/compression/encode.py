"""The paper's storage scheme (Han et al. 2016, Sec. 2 and 4) for one layer, and its exact inverse.

A layer becomes a list of *entries* in row-major order: each kept weight, plus a filler zero wherever the
gap to the previous entry does not fit in ``index_bits`` (the paper's Fig. 2). Each entry has a code
(0 = the filler/pruned value, else a codebook index; or, for a layer that is pruned but not quantized,
its raw float32 value) and a relative index (gap - 1, in [0, 2**index_bits)). Codes and indices are then
Huffman-coded with bitarray's canonical Huffman code (C); only the code lengths and symbols are stored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from bitarray import bitarray
from bitarray.util import canonical_decode, canonical_huffman

from ...engine.errors import SettingError
from .layers import (DEFAULT_INDEX_BITS, MAX_BITS, check_bits, compressible_layers, kind_of, model_of, per_layer,
                     resolve_layers)


@dataclass(frozen=True)
class Huffman:
    """A canonical Huffman-coded stream: ``counts[l]`` symbols have length ``l``, in ``symbols`` order."""

    counts: np.ndarray      # uint32 (max length + 1,)
    symbols: np.ndarray     # uint16 or uint32, canonical order
    data: bytes
    nbits: int

    @staticmethod
    def encode(values: np.ndarray) -> "Huffman":
        if len(values) == 0:
            return Huffman(np.zeros(1, np.uint32), np.zeros(0, np.uint32), b"", 0)
        uniq, freq = np.unique(values, return_counts=True)
        code, counts, symbols = canonical_huffman({int(u): int(f) for u, f in zip(uniq, freq)})
        bits = bitarray(endian="big")
        bits.encode(code, values.tolist())
        return Huffman(np.asarray(counts, np.uint32), np.asarray(symbols, np.uint32), bits.tobytes(), len(bits))

    def decode(self, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros(0, np.int64)
        bits = bitarray(endian="big")
        bits.frombytes(self.data)
        del bits[self.nbits:]
        return np.fromiter(canonical_decode(bits, self.counts.tolist(), self.symbols.tolist()), np.int64, count=n)


@dataclass(frozen=True)
class LayerCode:
    """One layer in the paper's scheme.

    Attributes:
        name, shape, kind: the layer, its weight shape, ``"conv"`` or ``"fc"``.
        mode: ``"codebook"`` (shared weights, ``bits`` per code) or ``"raw"`` (kept float32 values, pruning only).
        bits, index_bits: fixed-width sizes before Huffman coding (``bits`` is 32 for raw values; ``index_bits``
            is 0 for a layer stored densely, every weight in order, when that is smaller than sparse entries).
        n_weights, n_kept, n_entries: weights of the layer, kept ones, entries stored (kept + fillers).
        codebook: float32 shared values (entry 0 is 0.0); empty in raw mode.
        weights: Huffman stream of the codes (codebook mode); ``values``: raw float32 bytes (raw mode).
        index: Huffman stream of the relative indices.
    """

    name: str
    shape: tuple[int, ...]
    kind: str
    mode: str
    bits: int
    index_bits: int
    n_weights: int
    n_kept: int
    n_entries: int
    codebook: np.ndarray
    weights: Huffman | None
    values: bytes
    index: Huffman

    # ---- the paper's per-layer table (bits per stored entry; rates against 32-bit dense weights)
    @property
    def kept(self) -> float:
        return self.n_kept / max(self.n_weights, 1)

    @property
    def huffman_weight_bits(self) -> float:
        return (self.weights.nbits if self.weights is not None else 32 * self.n_entries) / max(self.n_entries, 1)

    @property
    def huffman_index_bits(self) -> float:
        return self.index.nbits / max(self.n_entries, 1)

    @property
    def codebook_bits(self) -> int:
        return 32 * len(self.codebook)

    def rate(self, stage: str) -> float:
        """Stored size / dense 32-bit size after ``"P"`` (32-bit values + indices), ``"P+Q"`` or ``"P+Q+H"``."""
        dense = 32 * self.n_weights
        if stage == "P":
            return self.n_entries * (32 + self.index_bits) / dense
        if stage == "P+Q":
            return (self.n_entries * (self.bits + self.index_bits) + self.codebook_bits) / dense
        wbits = self.weights.nbits if self.weights is not None else 32 * self.n_entries
        return (wbits + self.index.nbits + self.codebook_bits) / dense

    def decode(self) -> torch.Tensor:
        """The layer's weight tensor (float32), exactly as encoded."""
        if self.index_bits == 0:  # stored densely, every weight in order
            positions = np.arange(self.n_entries)
        else:
            positions = np.cumsum(self.index.decode(self.n_entries) + 1) - 1
        flat = np.zeros(self.n_weights, np.float32)
        if self.n_entries and positions[-1] >= self.n_weights:
            from .fileformat import CompressedFileError
            raise CompressedFileError(f"layer {self.name!r}: the indices run past its {self.n_weights} weights; "
                                      "the file is corrupted, save it again")
        if self.mode == "codebook":
            codes = self.weights.decode(self.n_entries)
            if self.n_entries and codes.max() >= len(self.codebook):
                from .fileformat import CompressedFileError
                raise CompressedFileError(f"layer {self.name!r}: a code is beyond its codebook; the file is "
                                          "corrupted, save it again")
            flat[positions] = self.codebook[codes]
        else:
            flat[positions] = np.frombuffer(self.values, dtype="<f4", count=self.n_entries)
        return torch.from_numpy(flat.reshape(self.shape))


def relative_indices(mask_flat: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Entry positions (kept weights and filler zeros) and their relative indices (gap - 1).

    A gap larger than ``2**index_bits`` gets filler entries every ``2**index_bits`` positions.

    Example:
        >>> pos, diff = relative_indices(np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], bool), 3)
        >>> pos.tolist(), diff.tolist()
        ([1, 9, 11], [1, 7, 1])
    """
    kept = np.flatnonzero(mask_flat)
    span = 1 << index_bits
    gaps = np.diff(np.concatenate([[-1], kept]))
    fillers = (gaps - 1) // span
    total = len(kept) + int(fillers.sum())
    positions = np.empty(total, np.int64)
    # each kept weight is preceded by its fillers at prev + span, prev + 2 span, ...
    owner = np.repeat(np.arange(len(kept)), fillers + 1)
    first = np.concatenate([[0], np.cumsum(fillers + 1)[:-1]])
    rank = np.arange(total) - first[owner]
    prev = np.concatenate([[-1], kept[:-1]])
    positions[:] = np.where(rank < fillers[owner], prev[owner] + (rank + 1) * span, kept[owner])
    diffs = np.diff(np.concatenate([[-1], positions])) - 1
    return positions, diffs


def encode_layer(name: str, weight: torch.Tensor, kind: str, index_bits: int, *,
                 codebook: np.ndarray | None = None, codes: torch.Tensor | None = None) -> LayerCode:
    """Encode one weight tensor (codes from a quantization, or shared values found in it, or raw values)."""
    w = weight.detach().cpu().to(torch.float32).numpy().reshape(-1)
    mask = w != 0
    n_kept = int(mask.sum())
    if codes is not None:
        code_flat = codes.reshape(-1).numpy()
        book = np.asarray(codebook, np.float32)
        if not np.array_equal(book[code_flat].view(np.uint32), w.view(np.uint32)):
            raise SettingError(f"layer {name!r}: its weights are not the quantization's shared values; apply the "
                               "quantization first (q.apply(model)) or encode without quantization=")
        mode = "codebook"
        mask = code_flat != 0
        n_kept = int(mask.sum())
    else:
        uniq = np.unique(w[mask])
        bits_needed = max(1, math.ceil(math.log2(len(uniq) + 1)))
        cheaper = n_kept * bits_needed + 32 * (len(uniq) + 1) < 32 * n_kept
        if bits_needed <= MAX_BITS and cheaper:
            mode = "codebook"
            book = np.concatenate([[0.0], uniq]).astype(np.float32)
            code_flat = np.zeros(len(w), np.int64)
            code_flat[mask] = np.searchsorted(uniq, w[mask]) + 1
        else:
            mode, book, code_flat = "raw", np.zeros(0, np.float32), None
    positions, diffs = relative_indices(mask, index_bits)
    value_bits = max(1, math.ceil(math.log2(len(book)))) if mode == "codebook" else 32
    if len(w) * value_bits <= len(positions) * (value_bits + index_bits):
        # every weight in order is smaller than sparse entries (an unpruned or barely pruned layer): no indices
        index_bits, positions, diffs = 0, np.arange(len(w)), np.zeros(0, np.int64)
    index = Huffman.encode(diffs)
    if mode == "codebook":
        bits = max(1, math.ceil(math.log2(len(book))))
        return LayerCode(name, tuple(weight.shape), kind, mode, bits, index_bits, len(w), n_kept, len(positions),
                         book, Huffman.encode(code_flat[positions]), b"", index)
    values = w[positions].astype("<f4").tobytes()
    return LayerCode(name, tuple(weight.shape), kind, "raw", 32, index_bits, len(w), n_kept, len(positions),
                     book, None, values, index)


@dataclass(frozen=True)
class Encoded:
    """A whole model in the paper's scheme: coded layers plus every other tensor (biases, buffers) as is.

    Attributes:
        layers: the coded conv / linear weights, in model order.
        dense: state-dict name -> the other tensors (numpy, their own dtype).
        architecture: ``(name, shape, dtype)`` of every state-dict entry (checked when loading).
        meta: free JSON-able information (e.g. ``{"zoo": "lenet-5"}``).
    """

    layers: tuple[LayerCode, ...]
    dense: dict[str, np.ndarray]
    architecture: tuple[tuple[str, tuple[int, ...], str], ...]
    meta: dict

    @property
    def dense_bytes(self) -> int:
        """Bytes of the uncompressed model: every parameter and buffer at its own width."""
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in self.architecture)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The decoded state dict (weights exactly as encoded)."""
        state = {f"{lc.name}.weight": lc.decode() for lc in self.layers}
        state.update({k: torch.from_numpy(v.copy()) for k, v in self.dense.items()})
        return {name: state[name] for name, _, _ in self.architecture}

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.state_dict().items()}


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.detach().cpu().numpy().dtype) if t.dtype != torch.bfloat16 else "bfloat16"


def encode(model_or_inspector: Any, quantization: Any = None, *, index_bits: int | Mapping[str, int] | None = None,
           layers: Sequence[str] | None = None, meta: dict | None = None) -> Encoded:
    """Encode a (pruned, quantized) model in the paper's scheme; the model is not changed.

    Each conv / linear weight is stored as codebook + codes when that is smaller (a quantized layer,
    or any layer with few distinct values), else as raw float32 values (pruning only), always with
    relative sparse indices and Huffman coding. Everything else in the state dict is stored as is.

    Args:
        model_or_inspector: the model to encode.
        quantization: a :class:`~ipynetviz.methods.compression.quantize.QuantizeResult` already applied to
            the model (its codes are used as they are; checked against the weights).
        index_bits: bits of a relative index (1 to 16), one or per layer; None: the paper's 8 for conv, 5 for fc.
        layers: which layers to code (None: every conv and linear layer); others are stored as is.
        meta: JSON-able information kept in the file.

    Returns:
        An :class:`Encoded` model (``save_compressed`` writes it).

    Example:
        >>> from ipynetviz.zoo import lenet_300_100
        >>> enc = encode(lenet_300_100())
        >>> [lc.mode for lc in enc.layers], enc.dense_bytes
        (['raw', 'raw', 'raw'], 1066440)
    """
    model = model_of(model_or_inspector)
    names = resolve_layers(model, layers)
    modules = compressible_layers(model)
    if isinstance(index_bits, Mapping):
        resolve_layers(model, list(index_bits))
    if index_bits is None:
        index_bits = {n: DEFAULT_INDEX_BITS[kind_of(modules[n])] for n in names}
    ibits = per_layer(index_bits, names, "index_bits", check_bits)
    coded = []
    for n in names:
        w = modules[n].weight
        if w.dtype != torch.float32:
            raise SettingError(f"layer {n!r} has {w.dtype} weights; encode works on float32 models "
                               "(call model.float() first)")
        q = quantization is not None and n in quantization.codes
        coded.append(encode_layer(n, w, kind_of(modules[n]), ibits[n] or DEFAULT_INDEX_BITS[kind_of(modules[n])],
                                  codebook=quantization.codebooks[n] if q else None,
                                  codes=quantization.codes[n] if q else None))
    weight_names = {f"{n}.weight" for n in names}
    state = model.state_dict()
    dense = {k: v.detach().cpu().numpy().copy() for k, v in state.items() if k not in weight_names}
    architecture = tuple((k, tuple(v.shape), _dtype_name(v)) for k, v in state.items())
    return Encoded(tuple(coded), dense, architecture, dict(meta or {}))


__all__ = ["encode", "Encoded", "LayerCode", "Huffman", "relative_indices", "encode_layer"]
