"""learning_dynamics equals SVCCA / PWCCA / CKA on explicitly collected activations, and refuses bad input."""
from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from torch import nn

from ipynetviz.engine.errors import InputError, ModelError
from ipynetviz.methods.correspondence import linear_cka, pwcca, svcca
from ipynetviz.methods.correspondence._inputs import align_spatial
from ipynetviz.methods.dynamics import default_layers, learning_dynamics
from ipynetviz.methods.training import train

LAYERS = ["1", "3", "6"]


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


@pytest.fixture(scope="module")
def run():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long() + (x[:, 1].mean((1, 2)) > 0).long()
    return train(_net, (x, y), epochs=2, batch_size=16, lr=0.1, checkpoints=[0, 0.5, 1], seed=1,
                 background=False, device="cpu")


@pytest.fixture(scope="module")
def probe():
    return torch.randn(60, 3, 8, 8, generator=torch.Generator().manual_seed(5))


def _acts(run, ckpt, x):
    m = copy.deepcopy(run.model)
    m.load_state_dict(ckpt.load())
    m.eval()
    out = {}
    hs = [dict(m.named_modules())[n].register_forward_hook(lambda _m, _i, o, n=n: out.__setitem__(n, o.detach()))
          for n in LAYERS]
    with torch.no_grad():
        m(x)
    for h in hs:
        h.remove()
    return out


def _brute(run, x, method):
    final = _acts(run, run.checkpoints[-1], x)
    grid = np.zeros((len(run.checkpoints), len(LAYERS), len(LAYERS)))
    for t, c in enumerate(run.checkpoints):
        acts = _acts(run, c, x)
        for i, li in enumerate(LAYERS):
            for j, lj in enumerate(LAYERS):
                a, b = acts[li], final[lj]
                if a.ndim == 4 and b.ndim == 4 and a.shape[2:] != b.shape[2:]:
                    a, b = align_spatial(a, b, mode="pool")
                if a.ndim != b.ndim:
                    a = a.mean((2, 3)) if a.ndim == 4 else a
                    b = b.mean((2, 3)) if b.ndim == 4 else b
                grid[t, i, j] = {"svcca": lambda: svcca(a, b, keep=0.99).mean,
                                 "pwcca": lambda: pwcca(a, b).value, "cka": lambda: linear_cka(a, b)}[method]()
    return grid


@pytest.mark.parametrize("method", ["svcca", "pwcca", "cka"])
def test_grid_equals_brute_force_on_collected_activations(run, probe, method):
    r = learning_dynamics(run, probe, LAYERS, method=method, batch_size=25)
    ref = _brute(run, probe, method)
    np.testing.assert_allclose(r.grid, ref, atol=1e-6)
    np.testing.assert_allclose(r.similarity, np.stack([np.diag(g) for g in ref]), atol=1e-6)
    np.testing.assert_allclose(r.similarity[-1], 1.0, atol=1e-6)  # the final network against itself
    assert r.steps.tolist() == [c.step for c in run.checkpoints] and r.complete and r.to_numpy() is r.similarity


def test_list_of_modules_and_convergence_step(run, probe):
    models = []
    for c in run.checkpoints:
        m = copy.deepcopy(run.model)
        m.load_state_dict(c.load())
        models.append(m)
    r = learning_dynamics(models, probe, LAYERS, method="cka", grid=False)
    ref = learning_dynamics(run, probe, LAYERS, method="cka", grid=False)
    np.testing.assert_allclose(r.similarity, ref.similarity, atol=1e-9)
    assert r.grid is None and r.steps.tolist() == [0, 1, 2]
    steps = r.convergence_step(0.0)
    assert steps == dict.fromkeys(LAYERS, 0)
    assert r.convergence_step(1.5) == dict.fromkeys(LAYERS)


def test_default_layers_are_post_activation():
    assert default_layers(_net()) == ["1", "3", "6"]


def test_cancel_returns_partial_and_callback_sees_rows(run, probe):
    stop = threading.Event()
    seen = []

    def cb(partial):
        seen.append(partial.complete)
        stop.set()
    r = learning_dynamics(run, probe, LAYERS, method="cka", grid=False, cancel=stop, callback=cb)
    assert not r.complete and seen == [False]
    assert np.isfinite(r.similarity[-1]).all()  # the final network is measured first
    assert np.isnan(r.similarity[:-1]).all()


def test_bad_inputs_name_the_fix(run, probe):
    one = train(_net, (probe, torch.zeros(60, dtype=torch.long)), epochs=1, batch_size=30, checkpoints=[1],
                background=False, device="cpu")
    with pytest.raises(InputError, match="at least two"):
        learning_dynamics(one, probe, LAYERS)
    other = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 6, 3, stride=2, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    with pytest.raises(ModelError, match="another architecture"):
        learning_dynamics([other, _net()], probe, LAYERS)
    with pytest.raises(InputError, match="method='cka'"):  # fc: 3 units, 2 samples
        learning_dynamics(run, probe[:2], LAYERS, method="svcca")
    assert learning_dynamics(run, probe[:3], LAYERS, method="cka", grid=False).n_images == 3
    with pytest.raises(InputError, match="at least 2 probe images"):
        learning_dynamics(run, probe[:1], LAYERS, method="cka")
    from ipynetviz.engine.errors import LayerNotFoundError
    with pytest.raises(LayerNotFoundError):
        learning_dynamics(run, probe, ["conv9"])
