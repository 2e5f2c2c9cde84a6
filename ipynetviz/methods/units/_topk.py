"""Deterministic running top-k on the device: ties go to the lower index, so results equal a Python scan."""
from __future__ import annotations

import torch

# the selection rule lives in the engine, beside the mergeable TopKState that scans use
from ipynetviz.engine.state import SORT_BELOW, topk_first  # noqa: F401  (re-exported)


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
