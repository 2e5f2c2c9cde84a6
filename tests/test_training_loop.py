"""The one training loop: equal to a plain PyTorch loop, deterministic, controllable, safe on bad input."""
from __future__ import annotations

import math
import threading
import time

import pytest
import torch
from torch import nn

from ipynetviz.engine.errors import ModelError, SettingError
from ipynetviz.methods.training import RunBusyError, train
from ipynetviz.methods.training import checkpoints as ckpt_mod


def _data(n=96, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()
    return x, y


def _net():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def _wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_loop_equals_a_plain_pytorch_loop(kind):
    x, y = _data()
    run = train(_net, (x, y), epochs=3, batch_size=20, optimizer=kind, lr=0.05, weight_decay=1e-3,
                schedule="cosine", seed=3, device="cpu", background=False)
    # the reference: the same seed, the same data-order generator, torch's own optimiser and scheduler
    torch.manual_seed(3)
    ref = _net()
    groups = ref.parameters()
    opt = {"sgd": lambda: torch.optim.SGD(groups, lr=0.05, weight_decay=1e-3),
           "momentum": lambda: torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-3),
           "nesterov": lambda: torch.optim.SGD(groups, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
           "adam": lambda: torch.optim.Adam(groups, lr=0.05, weight_decay=1e-3),
           "adamw": lambda: torch.optim.AdamW(groups, lr=0.05, weight_decay=1e-3)}[kind]()
    total = 3 * 5
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    gen = torch.Generator().manual_seed(10_003)
    losses = []
    for _ in range(3):
        perm = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), 20):
            idx = perm[s:s + 20]
            loss = nn.functional.cross_entropy(ref(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    for (name, a), b in zip(run.model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), name  # bit for bit: the loop adds nothing to the numerics
    assert run.history.to_dict()["loss"].tolist() == losses
    assert run.complete and run.step == run.total_steps == total and run.state == "finished"


def test_same_seed_same_run_in_background_or_not():
    x, y = _data()
    a = train(_net, (x, y), epochs=2, batch_size=16, optimizer="adam", lr=1e-2, seed=5, background=False)
    b = train(_net, (x, y), epochs=2, batch_size=16, optimizer="adam", lr=1e-2, seed=5).wait(60)
    c = train(_net, (x, y), epochs=2, batch_size=16, optimizer="adam", lr=1e-2, seed=6, background=False)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    assert not torch.equal(a.model[0].weight, c.model[0].weight)
    assert b.done
    assert not any(t.name == "ipynetviz-train" and t.is_alive() for t in threading.enumerate())


def test_pause_resume_and_stop_keep_partial_results():
    x, y = _data(200)
    paused_at = threading.Event()

    class PauseAt3:
        def after_step(self, run, step):
            if step == 3:
                run.pause()
                paused_at.set()

    run = train(_net, (x, y), epochs=5, batch_size=10, lr=0.05, hooks=[PauseAt3()], checkpoints=[0, 1])
    assert paused_at.wait(60)
    _wait_for(lambda: run.state == "paused")
    assert run.step == 3 and len(run.history) == 3 and not run.done
    run.stop()
    run.wait(60)
    assert run.state == "stopped" and not run.complete and run.step == 3
    assert [c.step for c in run.checkpoints] == [0]  # the 100% checkpoint never came; the first stays
    assert run.steps_per_second > 0
    # resume continues where it paused; a stop from a hook ends it at that step
    resumed = threading.Event()

    class Pause2Stop6:
        def after_step(self, run, step):
            if step == 2:
                run.pause()
                resumed.set()
            if step == 6:
                run.stop()

    run2 = train(_net, (x, y), epochs=5, batch_size=10, lr=0.05, hooks=[Pause2Stop6()])
    assert resumed.wait(60)
    _wait_for(lambda: run2.state == "paused")
    run2.resume()
    run2.wait(60)
    assert run2.state == "stopped" and run2.step == 6
    assert run2.history.to_dict()["step"].tolist() == [1, 2, 3, 4, 5, 6]


def test_cancel_and_callback_follow_the_house_vocabulary():
    x, y = _data()
    stop = threading.Event()
    seen = []

    def callback(run):
        seen.append(run.step)
        if run.step == 4:
            stop.set()

    run = train(_net, (x, y), epochs=4, batch_size=16, cancel=stop, callback=callback, callback_every=2,
                background=False)
    assert seen == [2, 4, 4] and run.step == 4 and not run.complete
    ticks = []
    train(_net, (x, y), epochs=1, batch_size=32, progress=lambda d, t: ticks.append((d, t)), background=False)
    assert ticks == [(1, 3), (2, 3), (3, 3)]


def test_checkpoints_at_fractions_in_memory_and_on_disk(tmp_path):
    x, y = _data()
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in _net().state_dict().items()}
    mem = train(_net, (x, y), epochs=4, batch_size=24, lr=0.1, seed=0, checkpoints=[0, 0.25, 0.5, 1.0],
                background=False)
    assert [c.step for c in mem.checkpoints] == [0, 4, 8, 16]
    assert [c.fraction for c in mem.checkpoints] == [0, 0.25, 0.5, 1.0]
    for k, v in init.items():
        assert torch.equal(mem.checkpoints[0].state[k], v)
        assert torch.equal(mem.checkpoints[-1].state[k], mem.model.state_dict()[k])
    assert not torch.equal(mem.checkpoints[1].state["0.weight"], mem.checkpoints[2].state["0.weight"])
    disk = train(_net, (x, y), epochs=4, batch_size=24, lr=0.1, seed=0, checkpoints=[0, 0.5, 1.0],
                 checkpoint_dir=tmp_path, background=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step00000000.pt", "step00000008.pt", "step00000016.pt"]
    for c in disk.checkpoints:
        assert c.state is None
        ref = mem.checkpoints[[0, 4, 8, 16].index(c.step)].state
        assert all(torch.equal(c.load()[k], ref[k]) for k in ref)
    with pytest.raises(SettingError, match="max_checkpoints"):
        train(_net, (x, y), checkpoints=[0, 0.5, 1], max_checkpoints=2, background=False)


def test_stop_during_a_checkpoint_write_leaves_a_whole_file(tmp_path, monkeypatch):
    x, y = _data()
    holder = {}
    real_save = torch.save

    def slow_save(obj, f):
        holder["run"].stop()  # Stop pressed while the file is being written
        real_save(obj, f)

    monkeypatch.setattr(ckpt_mod.torch, "save", slow_save)

    class Keep:
        def on_start(self, run):
            holder["run"] = run

    run = train(_net, (x, y), epochs=4, batch_size=24, checkpoints=[0.25, 0.5], checkpoint_dir=tmp_path,
                hooks=[Keep()], background=False)
    assert run.state == "stopped" and run.step == 4
    files = list(tmp_path.iterdir())
    assert [p.name for p in files] == ["step00000004.pt"]  # no temporary file left beside it
    state = torch.load(files[0], weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in run.model.state_dict().items())


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_weights():
    x, y = _data()
    x = x * 100
    run = train(_net, (x, y), epochs=20, batch_size=16, optimizer="sgd", lr=1e6, checkpoints=[0], good_every=1,
                background=False)
    assert run.state == "diverged" and not run.complete
    assert "loss became nan" in run.error.lower() or "loss became inf" in run.error.lower()
    assert "Lower the learning rate" in run.error and "lr=100000" in run.error
    assert run.last_good is not None and run.last_good.step < run.step + 1
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    for k, v in run.last_good.state.items():
        assert torch.equal(run.model.state_dict()[k], v)
    assert len(run.checkpoints) == 1 and all(torch.isfinite(v).all() for v in run.checkpoints[0].state.values())


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=0), "lr must be a finite number > 0"),
    (dict(lr=float("nan")), "lr must be"),
    (dict(lr=-1), "lr must be"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(batch_size=97), "batch_size=97 is above the 96 training images; pass batch_size=96 or less"),
    (dict(epochs=0), "epochs must be"),
    (dict(optimizer="rmsprop"), "one of.*'rmsprop'|'rmsprop'.*one of"),
    (dict(schedule="exp"), "one of.*'exp'|'exp'.*one of"),
    (dict(checkpoints=[1.5]), r"checkpoint fraction must be in \[0, 1\]"),
    (dict(momentum=1.0), "momentum"),
])
def test_bad_settings_name_the_fix(kwargs, match):
    x, y = _data()
    with pytest.raises(SettingError, match=match):
        train(_net, (x, y), background=False, **kwargs)


def test_bad_models_and_a_second_run_on_a_busy_model():
    x, y = _data()
    with pytest.raises(ModelError, match="no parameters to train"):
        train(nn.ReLU(), (x, y), background=False)
    with pytest.raises(ModelError, match="frozen"):
        train(_net(), (x, y), frozen=["0", "2"], background=False)
    model = _net()
    gate = threading.Event()

    class Hold:
        def after_step(self, run, step):
            gate.wait(60)

    first = train(model, (x, y), epochs=2, batch_size=16, hooks=[Hold()])
    with pytest.raises(RunBusyError, match=r"call run.stop\(\) and run.wait\(\)"):
        train(model, (x, y), background=False)
    gate.set()
    first.wait(60)
    assert first.complete and len(first.history) == 12  # the first run was not disturbed
    second = train(model, (x, y), epochs=1, batch_size=16, background=False)  # free again
    assert second.complete


def test_frozen_layers_and_freezing_mid_run():
    x, y = _data()
    torch.manual_seed(0)
    init = _net()[0].weight.detach().clone()
    run = train(_net, (x, y), epochs=2, optimizer="adamw", weight_decay=0.5, lr=0.01, frozen=["0"],
                batch_size=16, background=False)
    assert torch.equal(run.model[0].weight, init)  # not even weight decay touched it
    assert not torch.equal(run.model[2].weight, _net()[2].weight)
    kept = {}

    class FreezeAt3:
        def after_step(self, run, step):
            if step == 3:
                run.freeze("2")
                kept["w"] = run.model[2].weight.detach().clone()

    run = train(_net, (x, y), epochs=2, optimizer="momentum", lr=0.05, batch_size=16, hooks=[FreezeAt3()],
                background=False)
    assert torch.equal(run.model[2].weight, kept["w"])


def test_pruning_masks_and_a_custom_update_plug_in():
    x, y = _data()
    torch.manual_seed(1)
    mask = (torch.rand(16, 8) > 0.5).float()

    class Prune:
        def on_start(self, run):
            with torch.no_grad():
                run.model[0].weight.mul_(mask)

        def after_backward(self, run, step):
            run.model[0].weight.grad.mul_(mask)

    run = train(_net, (x, y), epochs=3, optimizer="momentum", lr=0.05, batch_size=16, hooks=[Prune()],
                background=False)
    assert torch.equal(run.model[0].weight * (1 - mask), torch.zeros(16, 8))
    assert (run.model[0].weight[mask.bool()] != 0).all()
    calls = []

    def sign_sgd(run, step):  # a per-step update of one's own
        calls.append(step)
        with torch.no_grad():
            for p in run.model.parameters():
                p -= run.lr * p.grad.sign()

    torch.manual_seed(0)
    before = _net()[0].weight.detach().clone()
    run = train(_net, (x, y), epochs=1, lr=0.01, batch_size=32, param_update=sign_sgd, background=False)
    assert calls == [1, 2, 3]
    delta = (run.model[0].weight - before).abs()
    moved = delta[delta > 0]  # three steps of +-lr each: a net change of lr or 3 lr
    assert (((moved - 0.01).abs() < 1e-5) | ((moved - 0.03).abs() < 1e-5)).all()


def test_layer_records_match_a_brute_force_reference():
    x, y = _data()
    run = train(_net, (x, y), epochs=1, batch_size=32, optimizer="momentum", lr=0.1, record_every=1,
                checkpoints=[0, 1 / 3, 2 / 3, 1], histogram_bins=10, background=False)
    rows = run.history.layers
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and set(rows[1]) == {"step", "0", "2"}
    states = [c.state for c in run.checkpoints]
    for k in (1, 2, 3):
        for layer in ("0", "2"):
            before, after = states[k - 1][f"{layer}.weight"], states[k][f"{layer}.weight"]
            rec = rows[k][layer]
            assert rec["weight_norm"] == pytest.approx(float(after.norm()), rel=1e-6)
            assert rec["update_ratio"] == pytest.approx(float((after - before).norm() / before.norm()), rel=1e-5)
            assert rec["grad_norm"] > 0
    hist = run.history.histograms[-1]["0"]
    assert hist["weight"].sum() == 16 * 8 and len(hist["weight"]) == 10 and hist["grad"].sum() == 16 * 8


def test_evaluations_match_an_independent_measure():
    x, y = _data(120)
    xt, yt = _data(60, seed=9)
    run = train(_net, (x, y), test=(xt, yt), epochs=3, batch_size=40, lr=0.1, train_eval=50, eval_every=2,
                background=False)
    evals = run.history.evals
    assert [e["step"] for e in evals] == [0, 2, 4, 6, 8, 9]
    with torch.no_grad():
        out = run.model(xt)
        ref_acc = float((out.argmax(1) == yt).float().mean())
        ref_loss = float(nn.functional.cross_entropy(out, yt))
        train_acc = float((run.model(x[:50]).argmax(1) == y[:50]).float().mean())
    assert evals[-1]["test_accuracy"] == pytest.approx(ref_acc)
    assert evals[-1]["test_loss"] == pytest.approx(ref_loss, rel=1e-5)
    assert evals[-1]["train_accuracy"] == pytest.approx(train_acc)
    arrays = run.to_dict()
    assert len(arrays["eval_test_accuracy"]) == 6 and arrays["loss"].shape == (9,)


def test_a_failing_hook_ends_the_run_with_its_message():
    x, y = _data()
    ended = []

    class Broken:
        def after_step(self, run, step):
            if step == 2:
                raise RuntimeError("mask shape mismatch")

        def on_end(self, run):
            ended.append(run.state)

    run = train(_net, (x, y), epochs=2, batch_size=16, hooks=[Broken()])
    with pytest.raises(RuntimeError, match="mask shape mismatch"):
        run.wait(60)
    assert run.state == "failed" and "training failed at step 2: RuntimeError: mask shape mismatch" in run.error
    assert ended == ["failed"] and len(run.history) == 2
    again = train(run.model, (x, y), epochs=1, batch_size=16, background=False)  # the model is free again
    assert again.complete


def test_budgeted_evaluation_takes_its_share_of_the_time(monkeypatch):
    from ipynetviz.methods.training import record

    clock = [0.0]
    monkeypatch.setattr(record.time, "perf_counter", lambda: clock[0])

    class FakeRun:
        total_steps, steps_per_epoch, step, epoch = 100, 10, 0, 0

    ev = record.Evaluator(every=1, budget=0.1)
    ev._evaluate = lambda run: clock.__setitem__(0, clock[0] + 0.5)  # an evaluation costs 0.5 s
    run, at = FakeRun(), []
    assert not ev.due(run, 0)  # no evaluation before the first step (the first point comes sooner)
    for step in range(1, 101):
        clock[0] += 0.125  # a step costs 1/8 s
        run.step = step
        if ev.due(run, step):
            at.append(step)
            ev(run)
    # the first at step 1 (no cost known yet), then after every 5 s of training (40 steps), and the last step
    assert at == [1, 41, 81, 100]
    assert not record.Evaluator(every=3).due(run, 4) and record.Evaluator(every=3).due(run, 6)


def test_a_background_run_is_stopped_at_interpreter_exit():
    import subprocess
    import sys

    code = ("import torch\nfrom torch import nn\nfrom ipynetviz.methods.training import train\n"
            "x, y = torch.randn(64, 8), torch.arange(64) % 4\n"
            "run = train(lambda: nn.Linear(8, 4), (x, y), epochs=10**6, batch_size=8)\n"
            "while run.step < 3: pass\n"
            "print('leaving at', run.state)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "leaving at running" in out.stdout


def test_all_finite_equals_the_elementwise_check():
    """The float64-sum check against isfinite on every element: NaN, +-inf (also both at once), huge finite values
    that would overflow a float32 sum, float16 and float64 tensors, integer buffers."""
    from ipynetviz.methods.training.checkpoints import all_finite

    def brute(state):
        return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())

    big = torch.full((1000,), 3.0e38)
    cases = [
        {"w": torch.randn(5, 5), "n": torch.tensor(3)},
        {"w": big, "b": -big},                                   # finite, though a float32 sum would overflow
        {"w": torch.tensor([1.0, float("nan")]), "b": torch.zeros(2)},
        {"w": torch.tensor([float("inf")]), "b": torch.tensor([float("-inf")])},
        {"h": torch.tensor([60000.0, 60000.0], dtype=torch.float16)},
        {"h": torch.tensor([1.0, float("inf")], dtype=torch.float16)},
        {"d": torch.tensor([1e308, 1e308], dtype=torch.float64)},  # finite; their float64 sum is not
        {"d": torch.tensor([1.0, float("nan")], dtype=torch.float64)},
        {"n": torch.tensor([1, 2])},
    ]
    for state in cases:
        assert all_finite(state) == brute(state), state
