"""Deep Compression methods against independent references: brute force, scikit-learn, full forward passes."""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from torch import nn

from ipynetviz import zoo
from ipynetviz.engine import Inspector
from ipynetviz.engine.errors import InputError, LayerNotFoundError, ModelError, SettingError
from ipynetviz.methods import compression as C
from ipynetviz.methods.compression.dsd import HISTOGRAM_STAGES
from ipynetviz.methods.compression.encode import relative_indices
from ipynetviz.methods.compression.kmeans import initial_centroids
from ipynetviz.methods.compression.prune import _keep_largest
from ipynetviz.methods.training import Normalise


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model, state):
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def _clean(model):
    return all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.fixture(scope="module")
def lenet300():
    return zoo.load("lenet-300-100", device="cpu")


@pytest.fixture(scope="module")
def mnist_test():
    x, y = zoo.mnist("test")
    return x[:300], y[:300]


# --------------------------------------------------------------------------------------------- prune
def test_prune_removes_exactly_the_smallest_magnitudes_and_leaves_the_model(lenet300):
    before = _state(lenet300.model)
    r = C.prune(lenet300, {"fc1": 0.9, "fc3": 0.5})
    assert _same(lenet300.model, before) and set(r.masks) == {"fc1", "fc3"}
    w = lenet300.model.fc1.weight.detach().abs().flatten()
    m = r.masks["fc1"].flatten()
    assert int((~m).sum()) == round(0.9 * w.numel())
    assert float(w[~m].max()) <= float(w[m].min())  # brute force: every removed weight is below every kept one
    assert r.sparsity["fc3"] == pytest.approx(0.5, abs=1 / 1010)
    pruned = r.weights(lenet300)
    assert torch.equal(pruned["fc1"] == 0, ~r.masks["fc1"])


def test_ties_are_broken_by_index_and_the_count_is_exact():
    w = torch.tensor([1.0, -1.0, 1.0, 2.0, 0.0, 0.0])
    mask, thr = _keep_largest(w, 0.5)
    assert mask.tolist() == [False, True, True, True, False, False] and thr == 1.0
    assert _keep_largest(w, 0.0)[0].all() and int(_keep_largest(w, 5 / 6)[0].sum()) == 1


def test_han_quality_rule_and_global_threshold(lenet300):
    r = C.prune(lenet300, quality=1.0)
    for name, m in r.masks.items():
        w = lenet300.model.get_submodule(name).weight.detach()
        assert torch.equal(m, w.abs() > float(w.std()))
    g = C.prune(lenet300, sparsity=0.8, scope="global")
    all_w = torch.cat([lenet300.model.get_submodule(n).weight.detach().abs().flatten() for n in g.masks])
    all_m = torch.cat([m.flatten() for m in g.masks.values()])
    assert int((~all_m).sum()) == round(0.8 * len(all_w))
    assert float(all_w[~all_m].max()) <= float(all_w[all_m].min())
    assert len(set(g.thresholds.values())) == 1


def test_apply_zeroes_and_repruning_keeps_the_masks():
    model = zoo.lenet_300_100()
    r = C.prune(model, 0.7)
    r.apply(model)
    again = C.prune(model, 0.7)
    assert all(torch.equal(again.masks[n], r.masks[n]) for n in r.masks)
    assert all(torch.equal(C.masks_of(model)[n], r.masks[n]) for n in r.masks)


@pytest.mark.parametrize("bad,match", [(1.0, r"sparsity must be in \[0, 1\)"), (-0.1, "sparsity"),
                                       ({"relu1": 0.5}, "has no weights"), ({"fc9": 0.5}, "did you mean")])
def test_prune_bad_settings_name_the_fix(lenet300, bad, match):
    before = _state(lenet300.model)
    with pytest.raises((SettingError, LayerNotFoundError), match=match):
        C.prune(lenet300, bad)
    assert _same(lenet300.model, before) and _clean(lenet300.model) and not lenet300.model.training


def test_models_without_conv_or_linear_layers_are_refused():
    with pytest.raises(ModelError, match="no Conv2d or Linear"):
        C.prune(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3)), 0.5)
    with pytest.raises(SettingError, match="either sparsity"):
        C.prune(zoo.lenet_5())


# ------------------------------------------------------------------------------- probe, sensitivity
def test_probe_reuses_lower_layers_and_matches_a_full_forward(lenet300, mnist_test):
    x, y = mnist_test
    probe = C.AccuracyProbe(lenet300, x, y, batch_size=128)
    w = lenet300.model.fc2.weight.detach()
    half = w * (torch.arange(w.numel()).reshape(w.shape) % 2 == 0)
    ref = copy.deepcopy(lenet300.model)
    ref.fc2.weight.data.copy_(half)
    with torch.no_grad():
        want = int((ref(lenet300.prepare(x)).argmax(1) == torch.from_numpy(y)).sum()) / len(y)
    assert probe.accuracy({"fc2": half}) == want
    assert probe._index["fc2"] in probe._inputs and probe._index["fc1"] not in probe._inputs  # only fc2 and up ran
    assert probe.accuracy() == int((lenet300.forward(x).argmax(1) == torch.from_numpy(y)).sum()) / len(y)


def test_probe_on_a_model_that_is_not_sequential(mnist_test):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = zoo.lenet_300_100()

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(0)
    net = Net()
    insp = Inspector(net, input_size=(1, 28, 28), device="cpu")
    x, y = mnist_test
    w = net.body.fc1.weight.detach() * 0
    probe = C.AccuracyProbe(insp, x, y)
    with torch.no_grad():
        ref = copy.deepcopy(net)
        ref.body.fc1.weight.zero_()
        want = int((ref(insp.prepare(x)).argmax(1) == torch.from_numpy(y)).sum()) / len(y)
    assert probe.accuracy({"body.fc1": w}) == want
    assert not torch.equal(net.body.fc1.weight, w)


def test_sensitivity_equals_pruning_each_layer_by_hand(lenet300, mnist_test):
    before = _state(lenet300.model)
    r = C.sensitivity(lenet300, mnist_test, layers=["fc2", "fc3"], sparsities=[0.0, 0.5, 0.95])
    assert _same(lenet300.model, before) and _clean(lenet300.model)
    x, y = mnist_test
    for i, layer in enumerate(r.layers):
        for j, s in enumerate(r.sparsities):
            m = copy.deepcopy(lenet300.model)
            C.prune(m, {layer: s}).apply(m)
            with torch.no_grad():
                want = int((m(lenet300.prepare(x)).argmax(1) == torch.from_numpy(y)).sum()) / len(y)
            assert r.accuracy[i, j] == want
    assert (r.accuracy[:, 0] == r.baseline).all() and r.complete
    stopped = C.sensitivity(lenet300, mnist_test, sparsities=[0.5, 0.9], cancel=lambda: True)
    assert not stopped.complete and np.isnan(stopped.accuracy).all()


# --------------------------------------------------------------------------------------- quantize
@pytest.fixture(scope="module")
def pruned_fc1():
    model, _ = zoo.load_teaching_model("lenet-5")
    w = model.fc1.weight.detach().numpy().ravel()
    return w[np.abs(w) > np.quantile(np.abs(w), 0.95)][::4]  # 5,000 of the surviving weights, bimodal


@pytest.mark.parametrize("init", ["linear", "density", "forgy"])
def test_kmeans_matches_or_beats_scikit_learn_from_the_same_start(pruned_fc1, init):
    from sklearn.cluster import KMeans

    start = initial_centroids(np.sort(pruned_fc1), 15, init, seed=0)
    ours = C.kmeans_1d(pruned_fc1, 15, init=init, seed=0, max_iter=2000)
    ref = KMeans(15, init=start.reshape(-1, 1), n_init=1, max_iter=2000, tol=0).fit(pruned_fc1.reshape(-1, 1))
    assert ours.inertia <= ref.inertia_ * (1 + 1e-5)
    # our inertia is the one its labels and centroids give
    assert ours.inertia == pytest.approx(float(((pruned_fc1 - ours.centroids[ours.labels]) ** 2).sum()), rel=1e-9)
    assert (np.diff(ours.centroids) > 0).all()


def test_kmeans_each_value_goes_to_its_nearest_centroid(pruned_fc1):
    r = C.kmeans_1d(pruned_fc1, 31)
    d = np.abs(pruned_fc1[:, None] - r.centroids[None])
    assert (d[np.arange(len(pruned_fc1)), r.labels] <= d.min(1) + 1e-12).all()
    few = C.kmeans_1d([1.0, 1.0, 2.0], 8)
    assert few.centroids.tolist() == [1.0, 2.0] and few.inertia == 0.0


def test_quantize_uses_k_shared_values_and_keeps_pruned_weights_zero():
    model = zoo.lenet_300_100()
    C.prune(model, 0.9).apply(model)
    before = _state(model)
    q = C.quantize(model, {"fc1": 3, "fc2": 5, "fc3": 5})
    assert _same(model, before)
    assert len(q.codebooks["fc1"]) == 8 and q.codebooks["fc1"][0] == 0.0
    w = q.weights()
    assert torch.equal(w["fc1"] == 0, model.fc1.weight == 0)
    assert len(torch.unique(w["fc1"])) == 8
    default = C.quantize(zoo.lenet_5())
    assert default.bits == {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}  # the paper's choice
    for bad in (0, 17, 2.5):
        with pytest.raises(SettingError, match="bits"):
            C.quantize(model, bad)


def test_centroid_gradient_is_the_sum_over_each_cluster():
    g = torch.randn(7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    codes = torch.randint(0, 6, (7, 9), generator=torch.Generator().manual_seed(1))
    got = C.centroid_gradient(g, codes, 6)
    for k in range(1, 6):
        want = sum(float(g[i, j]) for i in range(7) for j in range(9) if codes[i, j] == k)
        assert float(got[k]) == pytest.approx(want, abs=1e-12)
    assert float(got[0]) == 0.0


# ---------------------------------------------------------------------------------- encode, file
def test_relative_indices_insert_filler_zeros_and_invert():
    rng = np.random.default_rng(0)
    for p in (0.01, 0.1, 0.9):
        mask = rng.random(5000) < p
        pos, diff = relative_indices(mask, 4)
        assert (diff >= 0).all() and (diff < 16).all()
        assert np.array_equal(np.cumsum(diff + 1) - 1, pos)
        assert set(np.flatnonzero(mask)) <= set(pos.tolist())
        fillers = np.setdiff1d(pos, np.flatnonzero(mask))
        assert not mask[fillers].any()


@pytest.fixture(scope="module")
def compressed_lenet5():
    model, info = zoo.load_teaching_model("lenet-5")
    C.prune(model, {"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81}).apply(model)
    q = C.quantize(model)
    q.apply(model)
    return model, q


def test_file_round_trip_is_bit_identical(tmp_path, compressed_lenet5):
    model, q = compressed_lenet5
    saved = C.save_compressed(tmp_path / "lenet5.ipnz", model, quantization=q, meta={"zoo": "lenet-5"})
    assert saved.file_bytes == os.path.getsize(tmp_path / "lenet5.ipnz")
    assert saved.ratio > 25
    assert [p.name for p in tmp_path.iterdir()] == ["lenet5.ipnz"]  # no temporary file left
    fresh = zoo.lenet_5()
    loaded = C.load_compressed(tmp_path / "lenet5.ipnz", fresh)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k].view(torch.int32), v.view(torch.int32)), k
    assert all(torch.equal(loaded.masks[n], model.get_submodule(n).weight != 0) for n in loaded.masks)
    # encoding without the quantization finds the shared values in the weights (conv1's 330 weights are
    # smaller as raw values than with a 255-entry codebook, so it picks raw there)
    again = C.encode(model)
    assert [lc.mode for lc in again.layers] == ["raw", "codebook", "codebook", "codebook"]
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    # pruning only: raw float32 values, still exact
    dense = zoo.lenet_300_100()
    C.prune(dense, 0.9).apply(dense)
    back = zoo.lenet_300_100()
    C.load_compressed(C.save_compressed(tmp_path / "p.ipnz", dense).path, back)
    assert _same(back, _state(dense))


def test_table_rates_add_up(compressed_lenet5):
    model, q = compressed_lenet5
    enc = C.encode(model, q)
    for lc in enc.layers:
        assert lc.rate("P+Q+H") <= lc.rate("P+Q") + 1e-9
        if lc.n_weights > 10_000:  # (a 256-entry codebook outweighs conv1's 330 weights, as in the paper's 78.5%)
            assert lc.rate("P+Q") < lc.rate("P") / 2
        assert lc.bits == (8 if lc.kind == "conv" else 5)
        # conv1 keeps 66% of its weights: all 500 codes in order are smaller than sparse entries with indices
        assert lc.index_bits == (0 if lc.name == "conv1" else lc.bits)
        assert lc.n_entries >= lc.n_kept


def test_bad_files_get_clear_errors_and_leave_the_model(tmp_path, compressed_lenet5):
    model, q = compressed_lenet5
    good = C.save_compressed(tmp_path / "m.ipnz", model, quantization=q, meta={"zoo": "lenet-5"})
    data = good.path.read_bytes()
    target = zoo.lenet_5()
    before = _state(target)
    cases = {"trunc.ipnz": (data[:len(data) // 2], "truncated"),
             "flip.ipnz": (data[:-10] + bytes([data[-10] ^ 1]) + data[-9:], "corrupted"),
             "empty.ipnz": (b"", "empty"),
             "other.ipnz": (b"PK\x03\x04" + data[4:], "not a file written by save_compressed")}
    for name, (blob, match) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(C.CompressedFileError, match=match):
            C.load_compressed(tmp_path / name, target)
        assert _same(target, before)
    with pytest.raises(ModelError, match="another architecture.*load it into lenet-5"):
        C.load_compressed(good.path, zoo.lenet_300_100())
    with pytest.raises(C.CompressedFileError, match="no file"):
        C.load_compressed(tmp_path / "missing.ipnz", target)


def test_an_unpruned_layer_is_stored_without_indices(tmp_path):
    model = zoo.lenet_300_100()
    C.prune(model, {"fc1": 0.9}).apply(model)
    enc = C.encode(model)
    assert [lc.index_bits for lc in enc.layers] == [5, 0, 0]
    assert enc.layers[1].rate("P") == 1.0 and enc.layers[1].n_entries == 30_000
    back = zoo.lenet_300_100()
    C.load_compressed(C.save_compressed(tmp_path / "m.ipnz", enc).path, back)
    assert _same(back, _state(model))


def test_a_failed_save_leaves_no_file(tmp_path, compressed_lenet5, monkeypatch):
    model, q = compressed_lenet5
    path = tmp_path / "m.ipnz"
    C.save_compressed(path, model, quantization=q)
    old = path.read_bytes()

    def boom(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        C.save_compressed(path, zoo.lenet_5())
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["m.ipnz"]
    with pytest.raises(InputError, match="does not exist"):
        C.save_compressed(tmp_path / "nope" / "m.ipnz", model)
    # weights that are not the quantization's shared values
    other = zoo.lenet_5()
    with pytest.raises(SettingError, match="apply the quantization first"):
        C.encode(other, q)


@pytest.mark.parametrize("name", ["shapes-cnn", "digits-cnn"])
def test_the_zoo_cnns_go_through_the_whole_pipeline(tmp_path, name):
    insp = zoo.load(name, device="cpu")
    model = copy.deepcopy(insp.model)
    C.prune(model, 0.8).apply(model)
    q = C.quantize(model, init="density")
    q.apply(model)
    saved = C.save_compressed(tmp_path / "m.ipnz", model, quantization=q)
    back = zoo.shapes_cnn() if name == "shapes-cnn" else zoo.digits_cnn()
    C.load_compressed(saved.path, back)
    assert _same(back, _state(model)) and saved.ratio > 8
    x, y = zoo.shapes(64, split="test") if name == "shapes-cnn" else zoo.digits("test")
    sens = C.sensitivity(insp, (x[:64], y[:64]), layers=insp.conv_layers[-2:], sparsities=[0.0, 0.9])
    assert sens.accuracy.shape == (2, 2) and (sens.accuracy[:, 0] == sens.baseline).all()


# --------------------------------------------------------------------------------------- retrain
def test_retraining_keeps_pruned_weights_exactly_zero_and_moves_only_centroids():
    x, y = zoo.mnist("train")
    x, y = x[:256], y[:256]
    info = zoo.metrics("lenet-300-100")
    model, _ = zoo.load_teaching_model("lenet-300-100")
    p = C.prune(model, 0.9)
    p.apply(model)
    run = C.retrain(model, (x, y), masks=p.masks, epochs=1, batch_size=64, lr=0.05, weight_decay=1e-3,
                    transform=Normalise(info["mean"], info["std"]), background=False)
    assert run.complete
    assert all(torch.equal(model.get_submodule(n).weight != 0, m) for n, m in p.masks.items())
    q = C.quantize(model, 4)
    q.apply(model)
    run = C.retrain(model, (x, y), quantization=q, epochs=1, batch_size=64, lr=0.01, record_every=1,
                    transform=Normalise(info["mean"], info["std"]), background=False)
    tuned = run.centroids.result()
    assert all(torch.equal(tuned.codes[n], q.codes[n]) for n in q.codes)  # codes unchanged
    assert not np.array_equal(tuned.codebooks["fc1"], q.codebooks["fc1"])  # centroids moved
    assert torch.equal(model.fc1.weight, tuned.weights()["fc1"])
    assert len(run.centroids.history) == run.step + 1
    assert _clean(model)


# -------------------------------------------------------------------------------------------- DSD
def test_dsd_stages_histograms_and_baseline_on_a_tiny_run():
    x, y = zoo.mnist("train")
    xt, yt = zoo.mnist("test")
    data, test = (x[:128], y[:128]), (xt[:64], yt[:64])
    r = C.dsd(zoo.lenet_300_100, data, test, sparsity=0.3, epochs=1, seeds=(0, 1), batch_size=64)
    assert r.complete and r.seeds == (0, 1) and r.layer == "fc1"
    assert all(a.shape == (2,) for a in r.accuracy.values())
    labels = [h[0] for h in r.histograms]
    assert labels == list(HISTOGRAM_STAGES)
    counts = {label: c for label, c, _ in r.histograms}
    edges = r.histograms[0][2]
    zero_bin = np.searchsorted(edges, 0.0, side="right") - 1
    n = 784 * 300
    assert all(int(c.sum()) == n for c in counts.values())  # every weight inside the shared edges
    assert counts["b: pruned"][zero_bin] >= 0.3 * n and counts["c: sparse trained"][zero_bin] >= 0.3 * n
    assert counts["e: re-dense trained"][zero_bin] < 0.3 * n  # the recovered weights moved off zero
    xs, ys = r.curves["dsd"]
    assert xs[-1] == pytest.approx(3.0) and len(xs) == len(ys)
    again = C.dsd(zoo.lenet_300_100, data, test, sparsity=0.3, epochs=1, seeds=(0,), batch_size=64)
    assert all(again.accuracy[k][0] == r.accuracy[k][0] for k in r.accuracy)  # seeded: reproducible
    stopped = C.dsd(zoo.lenet_300_100, data, test, epochs=1, seeds=(0,), cancel=lambda: True)
    assert not stopped.complete and stopped.seeds == ()
    with pytest.raises(SettingError, match="sparsity"):
        C.dsd(zoo.lenet_300_100, data, test, sparsity=1.5)


# ------------------------------------------------------------------------------------- docstrings
@pytest.mark.parametrize("module", ["layers", "prune", "probe", "sensitivity", "kmeans", "quantize", "encode",
                                    "fileformat", "table"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"ipynetviz.methods.compression.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_lab_picture_doctests():
    import doctest

    from ipynetviz.widgets import compression_parts
    assert doctest.testmod(compression_parts).failed == 0
