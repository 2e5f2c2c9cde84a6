"""Deterministic running top-k on the device: ties go to the lower index, so results equal a Python scan."""
from __future__ import annotations

import torch

# rows up to this length are fully sorted; longer ones go through topk + a threshold (one sync, less work)
SORT_BELOW = 4096


def topk_first(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``k`` largest values of (R, M) ``values``, ties broken by the lower column index.

    ``torch.topk`` picks among equal values arbitrarily; ReLU layers produce many exact zeros, so a
    brute-force comparison (and a reproducible gallery) needs a fixed rule. Rows are sorted by value
    descending, then by column ascending.

    Returns:
        (values (R, k), columns (R, k) int64).

    Example:
        >>> v, i = topk_first(torch.tensor([[1.0, 3.0, 3.0, 0.0]]), 2)
        >>> v.tolist(), i.tolist()
        ([[3.0, 3.0]], [[1, 2]])
    """
    r, m = values.shape
    k = min(int(k), m)
    if k == m or m <= SORT_BELOW:  # a stable sort: exact, and no device-to-host sync (which stalls a GPU)
        order = values.sort(dim=1, descending=True, stable=True).indices[:, :k]
        return values.gather(1, order), order
    threshold = values.topk(k, dim=1, sorted=True).values[:, -1:]
    above = values > threshold
    equal = values == threshold
    need = k - above.sum(1, keepdim=True)
    take = above | (equal & (equal.cumsum(1) <= need))
    cols = take.nonzero()[:, 1].view(r, k)  # row-major, so each row's columns come out ascending
    picked = values.gather(1, cols)
    order = picked.sort(dim=1, descending=True, stable=True).indices
    return picked.gather(1, order), cols.gather(1, order)


class RunningTopK:
    """Keep the k largest scores per row over a stream of column blocks, on the scores' device.

    Each block holds candidates with ids (R, B) that are all larger than every id seen before (the stream
    goes through the data set in order), so "ties to the lower index" holds across blocks too.
    """

    def __init__(self, k: int):
        self.k = int(k)
        self.values: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None

    def update(self, values: torch.Tensor, ids: torch.Tensor) -> None:
        """Merge a block of candidate ``values`` (R, B) with their ``ids`` (R, B) or (B,) int64."""
        if ids.ndim == 1:
            ids = ids.unsqueeze(0).expand_as(values)
        if values.shape[1] > self.k:
            values, cols = topk_first(values, self.k)
            ids = ids.gather(1, cols)
        if self.values is not None:
            values = torch.cat([self.values, values], 1)
            ids = torch.cat([self.ids, ids], 1)
        self.values, cols = topk_first(values, self.k)
        self.ids = ids.gather(1, cols)
