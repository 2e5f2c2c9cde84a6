"""The running top-k behind top_patches and nearest_neighbours: ties go to the lower index, on both code paths."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ipynetviz.engine import state as _state
from ipynetviz.methods.units._topk import RunningTopK, topk_first


def reference(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]


@pytest.mark.parametrize("sort_below", [0, 4096], ids=["threshold", "sort"])
def test_topk_first_and_running_merge_equal_a_python_sort(monkeypatch, sort_below):
    monkeypatch.setattr(_state, "SORT_BELOW", sort_below)  # topk_first lives in the engine
    rng = np.random.default_rng(0)
    for _ in range(150):
        r, m, k = rng.integers(1, 5), rng.integers(1, 40), rng.integers(1, 12)
        v = torch.as_tensor(rng.integers(0, 4, (r, m)), dtype=torch.float32)  # many ties
        vals, cols = topk_first(v, k)
        for i in range(r):
            assert cols[i].tolist() == reference(v[i].tolist(), k)
            assert vals[i].tolist() == [v[i, j].item() for j in cols[i]]
        running, start = RunningTopK(k), 0
        while start < m:
            stop = min(m, start + int(rng.integers(1, 7)))
            running.update(v[:, start:stop], torch.arange(start, stop))
            start = stop
        assert torch.equal(running.ids, cols)
