"""DynamicsMatrix and TransferPlot: what they draw equals the script results; slider, clicks, stop, live runs."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from ipynetviz.methods.dynamics import canonical_directions, layer_codes, learning_dynamics
from ipynetviz.methods.training import train
from ipynetviz.widgets.dynamics_matrix import DynamicsMatrix

LAYERS = ["1", "3", "6"]


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long() + (x[:, 1].mean((1, 2)) > 0).long()
    return x, y


@pytest.fixture(scope="module")
def run():
    return train(_net, _data(), epochs=2, batch_size=16, lr=0.1, checkpoints=[0, 0.25, 0.5, 1], seed=1,
                 background=False, device="cpu")


@pytest.fixture(scope="module")
def probe():
    return _data(60, 5)


def test_matrix_and_slider_show_the_script_result(run, probe):
    x, y = probe
    view = DynamicsMatrix(run, x, y, layers=LAYERS, method="cka", synchronous=True)
    ref = learning_dynamics(run, x, LAYERS, method="cka")
    assert view.state == "done" and view.layers == LAYERS
    np.testing.assert_allclose(view.matrix.color, ref.similarity.T[::-1])  # bottom layer drawn at the bottom
    assert list(view.matrix.column) == [str(s) for s in ref.steps] and view.slider.max == 3
    for t in (0, 2, 1, 3):  # the grid follows the slider at once, whatever order it moves in
        view.slider.value = t
        np.testing.assert_allclose(view.grid.color, ref.grid[t][::-1])
        assert view.checkpoint == t and f"step {ref.steps[t]}" in view.grid_fig.title
    view.method = "svcca"
    np.testing.assert_allclose(view.matrix.color, learning_dynamics(run, x, LAYERS).similarity.T[::-1])
    assert view.error.message == ""


def test_click_shows_aligned_directions_sorted_by_class(run, probe):
    x, y = probe
    view = DynamicsMatrix(run, x, y, layers=LAYERS, method="cka", synchronous=True, k=2)
    view.click(0, 1)  # the top row is the last layer; column 1 is the second checkpoint
    assert view.cell == (2, 1)
    a = layer_codes(run.model, run.checkpoints[1].load(), x, "6")
    b = layer_codes(run.model, run.checkpoints[-1].load(), x, "6")
    va, vb, corr = canonical_directions(a, b, k=2)
    order = np.argsort(y.numpy(), kind="stable")
    np.testing.assert_allclose(view.lines.y[0], va[order, 0], atol=1e-9)
    np.testing.assert_allclose(view.lines.y[1], vb[order, 0], atol=1e-9)
    assert f"{corr[0]:.2f}" in view.dir_fig.title and view.error.message == ""


def test_stop_keeps_the_checkpoints_done(run, probe):
    x, _ = probe
    view = DynamicsMatrix(run, x, layers=LAYERS, method="cka", synchronous=True)
    view._stop.set()
    view.stop()
    view.state = "idle"

    def partial_then_stop(value, _orig=view._show):
        _orig(value)
        view.stop()
    view._show = partial_then_stop
    view.refresh()
    assert view.state == "stopped" and view.result.complete is False
    assert np.isfinite(view.result.similarity[-1]).all() and np.isnan(view.result.similarity[0]).all()


def test_live_while_training_then_final(probe):
    x, _ = probe
    r = train(_net, _data(), epochs=6, batch_size=16, lr=0.1, checkpoints=[0, 0.2, 0.4, 0.6, 0.8, 1], seed=2,
              device="cpu", background=True)
    view = DynamicsMatrix(r, x, layers=LAYERS, method="cka", interval=0.05)
    r.wait(60)
    end = time.monotonic() + 60
    while (view.result is None or len(view.result.steps) < 6 or view.state != "done") and time.monotonic() < end:
        time.sleep(0.05)
        view.wait(10)
    view.wait(30)
    assert view.result is not None and len(view.result.steps) == 6 and view.state == "done"
    np.testing.assert_allclose(view.result.similarity, learning_dynamics(r, x, LAYERS, method="cka").similarity)
    assert view.error.message == ""


def _tnet(k):
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, k))


def _tdata(n=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 6, 6, generator=g) * 0.5
    x[:, 0, :3, :3] += (y % 2).float()[:, None, None]
    x[:, 0, 3:, 3:] += (y // 2).float()[:, None, None]
    return x, y


def test_transfer_plot_draws_the_table_and_clicked_filters():
    from ipynetviz.widgets.transfer_plot import TransferPlot, filter_picture
    view = TransferPlot((_tdata(), _tdata(40, 1)), ([0, 1], [2, 3]), n_layers=[1, 2], seeds=(0,), model=_tnet,
                        epochs=1, batch_size=20, synchronous=True, autostart=True)
    r = view.result
    assert view.state == "done" and view.networks == 10 and r.complete
    b = r.accuracies("baseB").mean()
    for cond in ("BnB", "BnB+", "AnB", "AnB+"):
        np.testing.assert_allclose(view.lines[cond].y, [r.accuracies(cond, n).mean() - b for n in (1, 2)])
    assert len(view.points.x) == 8 and "AnB+" in view.table.value
    view.click(6)  # points follow the records without the bases: record 8 is AnB at n=2
    rec = r.records[view.selected]
    assert view.selected == 8 and rec.condition == "AnB" and rec.n == 2
    base_a = next(x for x in r.records if x.condition == "baseA")
    np.testing.assert_array_equal(view.filters.image, filter_picture(rec.conv1))
    np.testing.assert_array_equal(view.source_filters.image, filter_picture(base_a.conv1))
    np.testing.assert_array_equal(view.filters.image, view.source_filters.image)  # frozen copy
    assert view.error.message == ""


def test_transfer_plot_stop_keeps_finished_networks():
    from ipynetviz.widgets.transfer_plot import TransferPlot
    view = TransferPlot((_tdata(), _tdata(40, 1)), ([0, 1], [2, 3]), n_layers=[1], model=_tnet, epochs=1,
                        batch_size=20, synchronous=True)
    orig = view._show

    def show_then_stop(result):
        orig(result)
        if len(result.records) == 3:
            view.stop()
    view._show = show_then_stop
    view.start()
    assert view.state == "stopped" and view.networks == 3 and len(view.points.x) == 1


def test_transfer_plot_draws_a_given_result():
    from ipynetviz.methods.dynamics import transfer_experiment
    from ipynetviz.widgets.transfer_plot import TransferPlot
    r = transfer_experiment((_tdata(), _tdata(40, 1)), ([0, 1], [2, 3]), n_layers=[1], model=_tnet, epochs=1,
                            batch_size=20)
    view = TransferPlot(result=r, synchronous=True)
    assert view.state == "done" and view.networks == 6 and len(view.points.x) == 4


def test_transfer_plot_keeps_finished_networks_when_one_fails():
    from ipynetviz.widgets.transfer_plot import TransferPlot
    broken = []

    class Net(nn.Module):  # _tnet, whose forward fails once `broken` is set (an injected crash)
        def __init__(self, k):
            super().__init__()
            self.body = _tnet(k)

        def forward(self, x):
            if broken:
                raise RuntimeError("injected")
            return self.body(x)
    view = TransferPlot((_tdata(), _tdata(40, 1)), ([0, 1], [2, 3]), n_layers=[1], model=Net, epochs=1,
                        batch_size=20, synchronous=True)
    orig = view._show

    def show(result):
        orig(result)
        if len(result.records) == 3:
            broken.append(True)
    view._show = show
    view.start()
    assert view.state == "failed" and view.networks == 3 and len(view.points.x) == 1
    assert "after 3 finished networks" in view.error.message and "injected" in view.error.message
