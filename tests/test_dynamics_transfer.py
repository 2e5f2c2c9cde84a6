"""transfer_experiment: the six conditions, copied and frozen layers, a checked split, partial results kept."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from ipynetviz.engine.errors import InputError, SettingError
from ipynetviz.methods.dynamics import CONDITIONS, split_classes, transfer_experiment


def _net(k):
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, k))


def _data(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 6, 6, generator=g) * 0.5
    x[:, 0, :3, :3] += (y == 0).float()[:, None, None] + (y == 2).float()[:, None, None]
    x[:, 0, 3:, 3:] += (y == 1).float()[:, None, None] + (y == 2).float()[:, None, None]
    return x, y


@pytest.fixture(scope="module")
def result():
    return transfer_experiment((_data(), _data(60, 1)), ([0, 1], [2, 3]), n_layers=[1, 2], seeds=(0, 1),
                               model=_net, epochs=2, batch_size=20, lr=0.05)


def test_every_condition_for_every_n_and_seed(result):
    assert len(result.records) == 2 * (2 + 4 * 2) and result.complete
    assert [r["condition"] for r in result.table()] == ["baseA", "baseB"] + [c for c in CONDITIONS[2:] for _ in (1, 2)]
    rows = {(r["condition"], r["n"]): r for r in result.table()}
    acc = result.accuracies("AnB+", 2)
    assert rows["AnB+", 2]["mean"] == pytest.approx(acc.mean()) and rows["AnB+", 2]["std"] == pytest.approx(acc.std())
    assert rows["AnB+", 2]["count"] == 2 and result.to_numpy().shape == (4, 2)
    assert all(0 <= r.accuracy <= 1 for r in result.records)
    assert "BnB" in str(result) and result.layers == ("0", "2", "6")


def test_frozen_copies_keep_the_source_filters(result):
    for seed in (0, 1):
        by = {(r.condition, r.n): r for r in result.records if r.seed == seed}
        for n in (1, 2):
            np.testing.assert_array_equal(by["BnB", n].conv1, by["baseB", 0].conv1)  # copied and frozen
            np.testing.assert_array_equal(by["AnB", n].conv1, by["baseA", 0].conv1)
            assert not np.array_equal(by["AnB+", n].conv1, by["baseA", 0].conv1)  # copied, then fine-tuned
        assert by["AnB", 1].classes_a == (0, 1) and by["AnB", 1].classes_b == (2, 3)


def test_random_split_per_seed_is_two_disjoint_halves():
    a0, b0 = split_classes(range(10), seed=0)
    a1, b1 = split_classes(range(10), seed=1)
    assert sorted(a0 + b0) == list(range(10)) and len(a0) == 5 and (a0, b0) != (a1, b1)
    assert split_classes(range(10), seed=0) == (a0, b0)


@pytest.mark.parametrize("split, match", [(([], [1, 2]), "empty"), (([0, 1], [1, 2]), "both halves"),
                                          (([0, 7], [1, 2]), "do not have"), ((0, 1, 2), "pair")])
def test_bad_splits_name_the_fix(split, match):
    with pytest.raises(InputError, match=match):
        transfer_experiment((_data(), _data(60, 1)), split, model=_net, epochs=1, batch_size=20)


def test_n_beyond_the_layers_is_refused():
    with pytest.raises(SettingError, match="n must be 1 to 2"):
        transfer_experiment((_data(), _data(60, 1)), ([0, 1], [2, 3]), n_layers=[3], model=_net)


def test_stop_keeps_the_finished_networks():
    stop = threading.Event()
    seen = []

    def cb(partial):
        seen.append(len(partial.records))
        if len(partial.records) == 3:
            stop.set()
    r = transfer_experiment((_data(), _data(60, 1)), ([0, 1], [2, 3]), n_layers=[1], model=_net, epochs=1,
                            batch_size=20, cancel=stop, callback=cb)
    assert not r.complete and [x.condition for x in r.records] == ["baseA", "baseB", "BnB"] and seen == [1, 2, 3]


def test_a_failure_mid_experiment_keeps_the_finished_networks():
    from ipynetviz.engine.errors import PartialResultError

    broken = threading.Event()

    class Net(nn.Module):  # _net, whose forward fails once `broken` is set (an injected crash)
        def __init__(self, k):
            super().__init__()
            self.body = _net(k)

        def forward(self, x):
            if broken.is_set():
                raise RuntimeError("injected failure")
            return self.body(x)

    def cb(partial):
        if len(partial.records) == 3:  # baseA, baseB and BnB n=1 finished: the next network crashes
            broken.set()
    with pytest.raises(PartialResultError, match=r"at BnB\+ n=1 seed=0 after 3 finished") as info:
        transfer_experiment((_data(), _data(60, 1)), ([0, 1], [2, 3]), n_layers=[1], model=Net, epochs=1,
                            batch_size=20, callback=cb)
    partial = info.value.partial
    assert [r.condition for r in partial.records] == ["baseA", "baseB", "BnB"] and not partial.complete
    assert isinstance(info.value.__cause__, RuntimeError) and "injected failure" in str(info.value)
    assert all(0 <= r.accuracy <= 1 for r in partial.records) and partial.records[0].conv1.shape == (3, 1, 3, 3)


def test_paper_values_show_the_papers_findings():
    from ipynetviz.methods.dynamics import PAPER_FIG2 as P

    base = P["baseB"]
    assert all(v > base for v in P["AnB+"])  # transfer + fine-tuning beats the baseline at every n
    assert np.mean(P["AnB+"]) - base == pytest.approx(0.0167, abs=5e-4)
    # specificity at the top, fragile co-adaptation in the middle
    assert int(np.argmin(P["AnB"])) + 1 == 7 and int(np.argmin(P["BnB"])) + 1 == 5
    assert all(len(P[c]) == len(P["n"]) == len(P["networks"][c]) for c in ("BnB", "BnB+", "AnB", "AnB+"))
