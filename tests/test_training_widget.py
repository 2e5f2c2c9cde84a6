"""TrainingLab on the kernel side: a run draws curves, filters and maps; compare mode; controls; bad input."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from ipynetviz import Selection
from ipynetviz.engine.errors import SettingError
from ipynetviz.widgets.training_lab import LiveView, TrainingLab


def _lab(**kw):
    settings = dict(epochs=1, n_train=192, batch_size=32, n_test=64, background=False)
    settings.update(kw)
    return TrainingLab("digits-cnn", **settings)


def test_a_run_draws_curves_filters_maps_and_bars():
    lab = _lab(optimizer="adam", lr=3e-3)
    before = lab.filter_box.children[0].value  # the placeholder
    run = lab.start()
    assert run.complete and lab.state == "finished" and lab.step == 6 and lab.error.message == ""
    assert "appear when a run starts" in before and lab.filters is not None
    from ipynetviz.widgets import base
    assert lab.filters not in base._VIEWS  # redrawn from the training thread: out of pictures_first
    assert lab.points == 6
    marks = lab.curves.series[0]
    np.testing.assert_array_equal(marks["loss"].x, np.arange(1, 7))
    assert len(marks["test_accuracy"].y) >= 1  # as often as 4% of the time allows, and at the end
    assert marks["test_accuracy"].y[-1] == pytest.approx(run.history.evals[-1]["test_accuracy"])
    # the filters shown are the trained weights, not the initial ones
    shown = lab.filters.result.weights
    np.testing.assert_allclose(shown, run.model.conv1.weight.detach().cpu().numpy(), rtol=1e-6)
    assert lab.maps.image is not None and lab.maps.tiles["n"] == 32  # conv1's 32 maps (layer default: relu1)
    assert list(lab.ratios.bars.x) == ["conv1", "conv2", "conv3", "conv4", "fc"]
    assert lab.histogram.bars.y.sum() == 32 * 1 * 5 * 5
    assert lab.bar.value == lab.bar.max == 6 and "steps/s" in lab.speed.value


def test_compare_mode_keeps_runs_with_the_same_init_and_order():
    lab = _lab(compare=True)
    lab.optimizer, lab.lr = "sgd", 0.05
    a = lab.start()
    lab.optimizer = "momentum"
    b = lab.start()
    assert len(lab.curves.series) == 2 and lab.runs == [a, b]
    assert lab.curves.series[0]["loss"].colors != lab.curves.series[1]["loss"].colors
    # same seed: the same first batch on the same initial weights, so the same first loss
    assert a.history.to_dict()["loss"][0] == b.history.to_dict()["loss"][0]
    assert a.history.to_dict()["loss"][-1] != b.history.to_dict()["loss"][-1]
    lab.compare = False
    lab.start()
    assert len(lab.curves.series) == 1 and len(lab.runs) == 1


def test_controls_are_the_traits_and_the_layer_follows_the_selection():
    sel = Selection()
    lab = _lab(selection=sel)
    lab.parts["optimizer"].value = "nesterov"
    lab.parts["batch_norm"].value = True
    assert lab.optimizer == "nesterov" and lab.batch_norm
    run = lab.start()
    assert isinstance(run.model.bn1, torch.nn.BatchNorm2d)
    assert isinstance(run.optimizer, torch.optim.SGD) and run.optimizer.defaults["nesterov"]
    sel.layer = "conv2"
    assert lab.layer == "conv2" and lab.maps.tiles["n"] == 64 and lab.filters.layer == "conv2"
    lab.filters.click_tile(5)  # a filter clicked in the lab selects its channel everywhere
    assert sel.channel == 5 and sel.layer == "conv2"
    lab.layer = "relu3"
    assert sel.layer == "relu3"
    with pytest.raises(SettingError, match="no setting 'learning_rate'"):
        TrainingLab("digits-cnn", learning_rate=0.1)


def test_bad_settings_show_in_the_error_area_and_nothing_runs():
    lab = _lab()
    lab.lr = 0.0
    lab.start_button.click()
    assert "lr must be" in lab.error.message and lab.run is None and lab.state == "idle"
    lab.lr = 1e-3
    lab.batch_size = 5000
    lab.start_button.click()
    assert "batch_size=5000 is above" in lab.error.message and lab.run is None and lab.state == "idle"
    lab.batch_size = 32
    lab.start_button.click()
    assert lab.error.message == "" and lab.run.complete


def test_mlp_shows_no_filters_and_a_divergent_run_says_so():
    lab = TrainingLab("mlp-512", epochs=1, n_train=64, batch_size=32, n_test=32, background=False)
    lab.start()
    assert lab.filters is None and "no convolution filters" in lab.filter_box.children[0].value
    assert lab.maps.image is None and lab.error.message == ""
    lab = _lab(optimizer="sgd", lr=100.0, epochs=2)
    run = lab.start()
    assert run.state == "diverged" and lab.state == "diverged"
    assert "Lower the learning rate" in lab.error.message
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_background_run_pause_resume_stop_from_the_buttons():
    lab = TrainingLab("digits-cnn", epochs=50, n_train=128, batch_size=32, n_test=32)
    lab.start_button.click()
    assert lab.error.message == ""
    deadline = time.monotonic() + 60
    while lab.run.step < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    lab.pause_button.click()
    assert lab.state == "paused" and lab.pause_button.description == "Resume"
    while lab.run.state != "paused":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    held = lab.run.step
    lab.start_button.click()  # a second run while one runs: refused with a message
    assert "a run is in progress" in lab.error.message
    assert lab.run.step == held
    lab.pause_button.click()
    assert lab.state == "running"
    lab.stop_button.click()
    assert lab.wait(60)
    assert lab.run.state == "stopped" and lab.state == "stopped" and lab.stop_button.disabled
    assert not any(t.name == "ipynetviz-train" and t.is_alive() for t in threading.enumerate())


def test_live_view_throttles_to_its_budget(monkeypatch):
    import ipynetviz.widgets.training_lab as mod

    clock = [0.0]
    monkeypatch.setattr(mod.time, "perf_counter", lambda: clock[0])

    def simulate(draw_cost):
        calls = []

        def draw(run):
            calls.append(clock[0])
            clock[0] += draw_cost

        clock[0] = 0.0
        live = LiveView(draw, lambda run: None, interval=0.5, budget=0.05)
        live.on_start(None)
        for step in range(1, 161):
            clock[0] += 0.125  # a step takes 1/8 s
            live.after_step(None, step)
        return np.diff(calls[1:])  # gaps after the first step's draw

    cheap = simulate(0.0)
    assert set(cheap.tolist()) == {0.5}  # every interval
    costly = simulate(0.25)  # a draw that costs 0.25 s waits for 20 x 0.25 = 5 s of training
    assert costly.min() >= 5.0 + 0.25 and costly.max() <= 5.25 + 0.125


def test_gradient_histograms_per_layer_have_names_axes_and_every_weight():
    lab = _lab(optimizer="adam", lr=3e-3)
    run = lab.start()
    g = lab.grad_histograms
    layers = ["conv1", "conv2", "conv3", "conv4", "fc"]
    assert list(g.figures) == layers and list(g.box.children) == [g.figures[n] for n in layers]
    last = [h for h in run.history.histograms if "grad" in h["conv1"]][-1]
    assert g.shown == last["step"]  # the newest record with gradients (the lab records every 20 steps and at 1)
    for name, param in ((n, dict(run.model.named_modules())[n].weight) for n in layers):
        fig, line = g.figures[name], g.lines[name]
        assert fig.title == name and fig.title_style["font-size"] == "13px"
        assert [a.label for a in fig.axes] == ["gradient", "count"]
        assert all(a.tick_style["font-size"] == "12px" for a in fig.axes)
        np.testing.assert_array_equal(line.y, last[name]["grad"])
        assert line.y.sum() == param.numel()  # every gradient entry is counted once
        assert line.scales["x"].min == -last[name]["grad_limit"] and line.scales["x"].max == last[name]["grad_limit"]


def test_layer_list_moves_the_shared_selection_and_follows_it():
    from ipynetviz.widgets.filter_grid import FilterGrid

    sel = Selection()
    lab = _lab(selection=sel)
    lab.start()
    assert lab.layer_list.options == ("conv1", "conv2", "conv3", "conv4", "fc")
    other = FilterGrid(lab.view_insp, layer="conv1", selection=sel)  # another view on the same selection
    lab.layer_list.value = "conv3"  # a click on the list
    assert sel.layer == "conv3" and lab.layer == "conv3" and other.layer == "conv3"
    assert lab.histogram.figure.title.startswith("conv3 weights")
    lab.layer_list.value = "fc"  # no feature maps: the maps stay, the histogram and the selection move
    assert sel.layer == "fc" and lab.layer == "conv3" and lab.histogram.figure.title.startswith("fc weights")
    sel.layer = "relu2"  # chosen elsewhere: the list lights conv2 and does not push it back
    assert lab.layer == "relu2" and lab.layer_list.value == "conv2" and sel.layer == "relu2"
    assert lab.error.message == ""


def test_weights_save_to_a_file_and_load_back(tmp_path):
    lab = _lab()
    lab.weights_path.value = str(tmp_path / "lab.pt")
    lab.save_button.click()
    assert "no run to save yet" in lab.error.message and not (tmp_path / "lab.pt").exists()
    run = lab.start()
    lab.save_button.click()
    assert lab.error.message == "" and "saved step 6" in lab.weights_status.value
    saved = torch.load(tmp_path / "lab.pt", weights_only=True)
    for k, v in run.model.state_dict().items():
        assert torch.equal(saved[k], v)
    with torch.no_grad():
        run.model.conv1.weight.zero_()
    lab.load_button.click()
    assert lab.error.message == "" and torch.equal(run.model.conv1.weight, saved["conv1.weight"])
    np.testing.assert_allclose(lab.filters.result.weights, saved["conv1.weight"].numpy(), rtol=1e-6)  # redrawn
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    lab.weights_path.value = str(tmp_path / "other.pt")
    lab.load_button.click()
    assert "holds weights of another model" in lab.error.message
    assert torch.equal(run.model.conv1.weight, saved["conv1.weight"])


def test_a_failed_weights_write_leaves_no_half_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import ipynetviz.methods.training.checkpoints as ckpt

    lab = _lab()
    run = lab.start()
    target = tmp_path / "lab.pt"
    lab.save_weights(str(target))
    good = target.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a file")
        raise OSError("disk full")
    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with torch.no_grad():
        run.model.conv1.weight.add_(1.0)
    lab.weights_path.value = str(target)
    lab.save_button.click()
    assert "disk full" in lab.error.message
    assert target.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["lab.pt"]
    lab.weights_path.value = str(tmp_path / "new.pt")
    lab.save_button.click()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.pt"]  # no new file, no temporary left


def test_saving_while_training_holds_the_run_between_two_steps(tmp_path):
    lab = TrainingLab("digits-cnn", epochs=50, n_train=128, batch_size=32, n_test=32)
    lab.start()
    deadline = time.monotonic() + 60
    while lab.run.step < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    checkpoint = lab.save_weights(str(tmp_path / "live.pt"))
    assert checkpoint.step >= 2 and lab.run.state in ("running", "paused")
    while lab.run.step <= checkpoint.step:  # it trains on after the copy
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(Exception, match="pause it"):
        lab.run.load(tmp_path / "live.pt")
    lab.stop()
    assert lab.wait(60)
    assert set(torch.load(tmp_path / "live.pt", weights_only=True)) == set(lab.run.model.state_dict())
