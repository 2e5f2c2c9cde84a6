"""freeze_training: the schedule freezes bottom-up, the counted backward multiply-adds equal torch's flop counter."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ipynetviz.engine.errors import SettingError
from ipynetviz.methods.dynamics import backward_macs, forward_macs, freeze_training


def _net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) > 0).long() + (x[:, 0, 4:].mean((1, 2)) > 0).long()
    return x, y


@pytest.mark.parametrize("frozen", [0, 1, 2])
def test_counted_backward_equals_torch_flop_counter(frozen):
    net = _net()
    x = torch.randn(5, 1, 8, 8)
    flops = list(forward_macs(net, x).values())
    assert flops == [64 * 4 * 9, 64 * 8 * 36, 3 * 8]
    for m in [net[0], net[2]][:frozen]:
        m.requires_grad_(False)
    loss = net(x).sum()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    # bias gradients are sums, not multiply-adds: the counter leaves them out too
    assert counter.get_total_flops() == 2 * backward_macs(flops, frozen) * len(x)


def test_schedule_freezes_bottom_up_and_saves_what_it_counts():
    x, y = _data()
    r = freeze_training(_net, (x, y), test=_data(48, 1), fractions=[0.25, 0.5], epochs=2, batch_size=16, lr=0.1,
                        device="cpu")
    assert r.layers == ("0", "2") and r.frozen_at == {"0": 3, "2": 6} and r.total_steps == 12
    f = [64 * 4 * 9, 64 * 8 * 36, 3 * 8]
    expected = 16 * (3 * backward_macs(f, 0) + 3 * backward_macs(f, 1) + 6 * backward_macs(f, 2))
    assert r.backward_macs == expected and r.backward_macs_unfrozen == 16 * 12 * backward_macs(f, 0)
    assert r.backward_saved == pytest.approx(1 - expected / (16 * 12 * backward_macs(f, 0)))
    assert 0 < r.training_saved < r.backward_saved and r.images == 192
    # same seed, so both start alike; the unfrozen run's conv1 went on training
    assert not torch.equal(r.run_unfrozen.model[0].weight, r.run.model[0].weight)
    assert 0 <= r.accuracy <= 1 and 0 <= r.accuracy_unfrozen <= 1 and r.complete
    assert r.time_s > 0 and r.time_unfrozen_s > 0 and r.to_numpy().shape == (4,)


def test_frozen_weights_stay_from_their_step():
    x, y = _data()
    seen = {}

    class Watch:
        def after_step(self, run, step):
            seen[step] = run.model[0].weight.detach().clone()
    r = freeze_training(_net, (x, y), fractions=[0.25, 0.5], epochs=2, batch_size=16, lr=0.1, device="cpu",
                        compare=False, hooks=[Watch()])
    assert r.run_unfrozen is None and np.isnan(r.time_unfrozen_s)
    assert torch.equal(seen[3], seen[12]) and not torch.equal(seen[1], seen[3])  # frozen after step 3


def test_similarity_schedule_records_measurements():
    x, y = _data()
    r = freeze_training(_net, (x, y), schedule="similarity", threshold=0.0, interval=2, epochs=2, batch_size=16,
                        lr=0.1, device="cpu", compare=False)
    # threshold 0: each layer freezes at the first comparison it gets, the lowest first
    assert list(r.frozen_at) == ["0", "2"] and r.frozen_at["0"] < r.frozen_at["2"]
    assert [s[1] for s in r.similarity] == ["0", "2"] and all(0 <= s[2] <= 1 for s in r.similarity)


def test_cancel_keeps_the_partial_run():
    x, y = _data()
    stop = threading.Event()
    r = freeze_training(_net, (x, y), fractions=[0.25, 0.5], epochs=2, batch_size=16, device="cpu",
                        cancel=stop, callback=lambda run: stop.set(), callback_every=2)
    assert not r.complete and r.run.step == 2 and r.run_unfrozen is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(fractions=[0.5]), "one fraction per layer"),
    (dict(fractions=[0.5, 0.2]), "non-decreasing"),
    (dict(layers=["2"], fractions=[0.5]), "bottom-up"),
    (dict(layers=["0", "2", "6"], fractions=[0.1, 0.2, 0.3]), "nothing to train"),
    (dict(frozen=["0"]), "not frozen="),
    (dict(schedule="sometimes"), "schedule must be"),
])
def test_bad_schedules_name_the_fix(kwargs, match):
    x, y = _data(32)
    with pytest.raises(SettingError, match=match):
        freeze_training(_net, (x, y), epochs=1, batch_size=16, device="cpu", **kwargs)
