"""The paper's per-layer size table (Han et al. 2016, Tables 2 and 3) for an encoded model, beside the paper's rows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encode import Encoded

COLUMNS = ("layer", "weights", "kept %", "weight bits P+Q", "weight bits P+Q+H", "index bits P+Q",
           "index bits P+Q+H", "rate P %", "rate P+Q %", "rate P+Q+H %")

# Transcribed by hand from Deep Compression (ICLR 2016, arXiv v5), Table 2 (LeNet-300-100) and Table 3 (LeNet-5):
# layer, weights, weights kept %, weight bits P+Q, P+Q+H, index bits P+Q, P+Q+H, compress rate P+Q %, P+Q+H %.
# Every digit checked against the arXiv v5 text (1510.00149v5, 15 Feb 2016), Tables 1-3; all matched as typed.
# The totals' weights % are "8% (12x)" there, their rates "3.1% (32x)", "2.49% (40x)" and "3.05% (33x)", "2.55% (39x)".
PAPER = {
    "lenet-300-100": (
        ("ip1", "235K", 8, 6, 4.4, 5, 3.7, 3.1, 2.32),
        ("ip2", "30K", 9, 6, 4.4, 5, 4.3, 3.8, 3.04),
        ("ip3", "1K", 26, 6, 4.3, 5, 3.2, 15.7, 12.70),
        ("total", "266K", 8, 6, 5.1, 5, 3.7, 3.1, 2.49),
    ),
    "lenet-5": (
        ("conv1", "0.5K", 66, 8, 7.2, 5, 1.5, 78.5, 67.45),
        ("conv2", "25K", 12, 8, 7.2, 5, 3.9, 6.0, 5.28),
        ("ip1", "400K", 8, 5, 4.5, 5, 4.5, 2.7, 2.45),
        ("ip2", "5K", 19, 5, 5.2, 5, 3.7, 6.9, 6.13),
        ("total", "431K", 8, 5.3, 4.1, 5, 4.4, 3.05, 2.55),
    ),
}
PAPER_ACCURACY = {"lenet-300-100": (1.64, 1.58, 40), "lenet-5": (0.80, 0.74, 39)}  # top-1 error before, after, rate


@dataclass(frozen=True)
class SizeTable:
    """Per-layer rows (see :data:`COLUMNS`) and a total row; ``file_bytes`` when measured from a file."""

    rows: tuple[tuple, ...]
    total: tuple
    dense_bytes: int
    file_bytes: int | None = None

    @property
    def ratio(self) -> float | None:
        """Dense bytes / file bytes (None without a file)."""
        return None if not self.file_bytes else self.dense_bytes / self.file_bytes

    def to_numpy(self) -> np.ndarray:
        """The numeric columns of the rows and the total, as floats."""
        return np.array([r[1:] for r in self.rows + (self.total,)], dtype=float)

    def markdown(self, paper: str | None = None) -> str:
        """A markdown table; with ``paper="lenet-5"`` (or ``"lenet-300-100"``) the paper's rows follow ours."""
        head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
        lines = [_fmt(r) for r in self.rows + (self.total,)]
        if paper in PAPER:
            for r in PAPER[paper]:
                layer, weights, kept, wq, wh, iq, ih, rq, rh = r
                lines.append(f"| paper {layer} | {weights} | {kept} | {wq} | {wh} | {iq} | {ih} | | {rq} | {rh} |")
        tail = ""
        if self.file_bytes:
            tail = (f"\nfile on disk: {self.file_bytes:,} bytes; dense float32: {self.dense_bytes:,} bytes; "
                    f"compression {self.ratio:.1f}x\n")
        return head + "\n".join(lines) + "\n" + tail

    def __str__(self) -> str:
        return self.markdown()


def _fmt(r) -> str:
    layer, weights, kept, wq, wh, iq, ih, rp, rq, rh = r
    return (f"| {layer} | {weights:,} | {kept:.1f} | {wq:.1f} | {wh:.2f} | {iq:.1f} | {ih:.2f} | {rp:.2f} | "
            f"{rq:.2f} | {rh:.2f} |")


def size_table(encoded: Encoded, file_bytes: int | None = None) -> SizeTable:
    """The paper's table for ``encoded``: per layer weights, kept %, bits per entry and compression rates.

    Bits are per stored entry (kept weights and filler zeros); rates are stored bits (with the codebook) over
    32-bit dense weights. The total row is weighted by the weights of each layer.

    Example:
        >>> from ipynetviz.zoo import lenet_300_100
        >>> from ipynetviz.methods.compression import encode, prune
        >>> m = lenet_300_100(); prune(m, 0.9).apply(m)
        >>> t = size_table(encode(m))
        >>> [r[0] for r in t.rows], round(t.total[2])
        (['fc1', 'fc2', 'fc3'], 10)
    """
    rows = []
    for lc in encoded.layers:
        rows.append((lc.name, lc.n_weights, 100 * lc.kept, lc.bits, lc.huffman_weight_bits, lc.index_bits,
                     lc.huffman_index_bits, 100 * lc.rate("P"), 100 * lc.rate("P+Q"), 100 * lc.rate("P+Q+H")))
    n = sum(lc.n_weights for lc in encoded.layers)
    e = sum(lc.n_entries for lc in encoded.layers)

    def entry_mean(values):
        return sum(v * lc.n_entries for v, lc in zip(values, encoded.layers)) / max(e, 1)

    def weight_mean(values):
        return sum(v * lc.n_weights for v, lc in zip(values, encoded.layers)) / max(n, 1)

    cols = list(zip(*rows)) if rows else [[]] * len(COLUMNS)
    total = ("total", n, 100 * sum(lc.n_kept for lc in encoded.layers) / max(n, 1), entry_mean(cols[3]),
             entry_mean(cols[4]), entry_mean(cols[5]), entry_mean(cols[6]), weight_mean(cols[7]),
             weight_mean(cols[8]), weight_mean(cols[9]))
    return SizeTable(tuple(rows), total, encoded.dense_bytes, file_bytes)


__all__ = ["size_table", "SizeTable", "PAPER", "PAPER_ACCURACY", "COLUMNS"]
