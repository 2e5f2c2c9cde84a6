"""Mergeable scan state: shards in any order merge to the one-pass answer (top-k bit for bit, moments to rounding)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ipynetviz.engine import state as _state
from ipynetviz.engine.errors import InputError
from ipynetviz.engine.state import MomentState, TopKState


def python_topk(values: np.ndarray, ids: np.ndarray, k: int):
    """The reference: sort each row by (value descending, id ascending) in plain Python."""
    out_v, out_i = [], []
    for row in values:
        order = sorted(range(len(row)), key=lambda j: (-row[j], ids[j]))[:k]
        out_v.append([row[j] for j in order])
        out_i.append([ids[j] for j in order])
    return np.array(out_v), np.array(out_i)


def shards_of(n: int, parts: int, rng) -> list[np.ndarray]:
    """A shuffled split of range(n) into ``parts`` pieces of random sizes (some may be tiny)."""
    perm = rng.permutation(n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=parts - 1, replace=False)) if parts > 1 else []
    return np.split(perm, cuts)


def fold(shard_ids: np.ndarray, values: torch.Tensor, k: int, rng) -> TopKState:
    """One shard's state, fed in a few random-sized blocks."""
    s = TopKState(k)
    start = 0
    while start < len(shard_ids):
        stop = min(len(shard_ids), start + int(rng.integers(1, 9)))
        cols = torch.as_tensor(shard_ids[start:stop])
        s.update(values[:, cols], cols)
        start = stop
    return s


@pytest.mark.parametrize("sort_below", [0, 4096], ids=["threshold", "sort"])
@pytest.mark.parametrize("parts", [1, 2, 7])
def test_topk_shards_in_any_order_equal_one_pass_and_a_python_sort(monkeypatch, sort_below, parts):
    monkeypatch.setattr(_state, "SORT_BELOW", sort_below)
    rng = np.random.default_rng(parts)
    for _ in range(12):
        r, n, k = int(rng.integers(1, 6)), int(rng.integers(parts + 1, 60)), int(rng.integers(1, 12))
        values = torch.as_tensor(rng.integers(0, 4, (r, n)), dtype=torch.float32)  # many exact ties (ReLU zeros)
        ref_v, ref_i = python_topk(values.numpy(), np.arange(n), k)
        states = [fold(ids, values, k, rng) for ids in shards_of(n, parts, rng)]
        for order in (range(parts), rng.permutation(parts)):
            merged = TopKState(k)
            for j in order:
                merged.merge(pickle.loads(pickle.dumps(states[j])))  # shards arrive pickled, as from Ray
            v, i = merged.result()
            np.testing.assert_array_equal(i, ref_i)
            np.testing.assert_array_equal(v, ref_v)


def test_topk_ties_go_to_the_lower_id_whatever_the_arrival_order():
    s = TopKState(3)
    s.update(torch.tensor([[1.0, 1.0]]), torch.tensor([50, 40]))
    s.merge(TopKState(3).update(torch.tensor([[1.0, 1.0, 0.5]]), torch.tensor([45, 5, 1])))
    assert s.result()[1].tolist() == [[5, 40, 45]]


def test_topk_per_row_ids_and_bad_input():
    s = TopKState(2).update(torch.tensor([[3.0, 3.0], [1.0, 2.0]]), torch.tensor([[9, 4], [7, 8]]))
    assert s.result()[1].tolist() == [[4, 9], [8, 7]]
    with pytest.raises(InputError, match="rows"):
        s.update(torch.zeros(3, 2), torch.tensor([1, 2]))
    with pytest.raises(InputError, match="same k"):
        s.merge(TopKState(3).update(torch.zeros(2, 1), torch.tensor([0])))
    with pytest.raises(InputError, match="positive integer"):
        TopKState(0)
    assert TopKState(2).merge(TopKState(2)).result()[0].shape == (0, 0)


@pytest.mark.parametrize("parts", [1, 2, 7])
@pytest.mark.parametrize("full", [True, False])
def test_moment_shards_in_any_order_equal_one_pass(parts, full):
    rng = np.random.default_rng(10 + parts)
    n = 700
    a = rng.normal(3.0, 2.0, (n, 5))
    b = np.c_[a[:, :2] * 0.5 + rng.normal(size=(n, 2)), rng.normal(100.0, 0.1, (n, 1))]  # a large mean too
    one = MomentState(full, full).update_flat(torch.from_numpy(a), torch.from_numpy(b))
    parts_ = [MomentState(full, full).update_flat(torch.from_numpy(a[ids]), torch.from_numpy(b[ids]))
              for ids in shards_of(n, parts, rng)]
    for order in (range(parts), rng.permutation(parts)):
        merged = MomentState(full, full)
        for j in order:
            merged.merge(pickle.loads(pickle.dumps(parts_[j])))
        assert merged.n_samples == n
        got, ref = merged.result(), one.result()
        for name in ("mean_a", "m2_a", "mean_b", "m2_b", "m2_ab"):
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=1e-9)
    ac, bc = a - a.mean(0), b - b.mean(0)
    np.testing.assert_allclose(one.result()["m2_ab"], ac.T @ bc, rtol=1e-12, atol=1e-9)
    want_aa = ac.T @ ac if full else (ac * ac).sum(0)
    np.testing.assert_allclose(one.result()["m2_a"], want_aa, rtol=1e-12, atol=1e-9)


def test_moment_merge_refuses_different_settings():
    x = torch.randn(10, 3, dtype=torch.float64)
    with pytest.raises(InputError, match="different settings"):
        MomentState().update_flat(x, x).merge(MomentState().update_flat(x))
    with pytest.raises(InputError, match="units"):
        MomentState().update_flat(x, x).merge(MomentState().update_flat(x[:, :2], x))
    empty = MomentState().merge(MomentState().update_flat(x))
    assert empty.within and empty.n_samples == 10


def test_update_moments_equals_update_flat_and_checks_its_parts():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(60, 4, generator=g, dtype=torch.float64), torch.randn(60, 3, generator=g, dtype=torch.float64)
    flat = MomentState().update_flat(x[:25], y[:25]).update_flat(x[25:], y[25:])
    parts = MomentState()
    for sl in (slice(0, 25), slice(25, 60)):
        xc, yc = x[sl] - x[sl].mean(0), y[sl] - y[sl].mean(0)
        parts.update_moments(len(xc), x[sl].mean(0), xc.T @ xc, y[sl].mean(0), yc.T @ yc, xc.T @ yc)
    for name in ("mean_a", "m2_a", "mean_b", "m2_b", "m2_ab"):
        torch.testing.assert_close(getattr(parts, name), getattr(flat, name), rtol=1e-12, atol=1e-12)
    assert parts.n_samples == 60 and parts.within is False
    xc = x - x.mean(0)
    with pytest.raises(InputError, match="together"):
        MomentState().update_moments(60, x.mean(0), xc.T @ xc, mean_b=y.mean(0))
    with pytest.raises(InputError, match=r"m2_a has shape \(4,\) but \(4, 4\)"):
        MomentState().update_moments(60, x.mean(0), (xc * xc).sum(0), y.mean(0), torch.eye(3, dtype=torch.float64),
                                     torch.zeros(4, 3))
    with pytest.raises(InputError, match="started with A and B"):
        parts.update_moments(60, x.mean(0), xc.T @ xc)
