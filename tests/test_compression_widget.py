"""CompressionLab from Python: what it shows equals an independent computation; the inspector's model is untouched."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ipynetviz import zoo
from ipynetviz.methods import compression as C
from ipynetviz.methods.compression.dsd import DSDResult
from ipynetviz.render import to_png
from ipynetviz.widgets import CompressionLab
from ipynetviz.widgets.compression_parts import weight_histogram


@pytest.fixture(scope="module")
def setting():
    insp = zoo.load("lenet-300-100", device="cpu")
    x, y = zoo.mnist("test")
    xt, yt = zoo.mnist("train")
    return insp, (x[:400], y[:400]), (xt[:128], yt[:128])


def _reference(insp, test, sparsity, bits):
    model = copy.deepcopy(insp.model)
    for name, s in sparsity.items():
        C.prune(model, {name: s}).apply(model)
    if bits:
        C.quantize(model, bits, layers=list(bits), max_iter=300).apply(model)
    with torch.no_grad():
        logits = model(insp.prepare(test[0]))
    return model, int((logits.argmax(1) == torch.from_numpy(test[1])).sum()) / len(test[1])


def test_sliders_and_bits_show_the_independently_computed_accuracy_size_and_picture(setting, tmp_path):
    insp, test, _ = setting
    before = {k: v.clone() for k, v in insp.model.state_dict().items()}
    lab = CompressionLab(insp, test, paper="lenet-300-100", synchronous=True)
    assert lab.accuracy == lab.dense_accuracy and lab.error.message == ""
    lab.set_sparsity("fc1", 0.9)
    lab.set_sparsity("fc2", 0.8)
    lab.set_bits("fc1", 4)
    model, want = _reference(insp, test, {"fc1": 0.9, "fc2": 0.8}, {"fc1": 4})
    assert lab.accuracy == want
    assert f"{100 * want:.2f}%" in lab.accuracy_text.value
    w = model.fc1.weight.detach()
    centroids = np.unique(w[w != 0].numpy())
    limit = float(insp.model.fc1.weight.detach().abs().max())
    assert lab.histogram.value == to_png(weight_histogram(w.numpy(), limit, centroids))
    assert len(centroids) == 15
    saved = lab.save(str(tmp_path / "lab.ipnz"))
    assert saved.file_bytes == lab.file_bytes == (tmp_path / "lab.ipnz").stat().st_size
    back = zoo.lenet_300_100()
    C.load_compressed(saved.path, back)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
    assert lab.last_saved[1] == want and "t-saved-bytes" in lab.saved_text.value
    assert "paper ip1" in lab.table.value
    lab.layer = "fc2"
    assert lab.histogram.value == to_png(weight_histogram(model.fc2.weight.detach().numpy(),
                                                          float(insp.model.fc2.weight.detach().abs().max())))
    assert all(torch.equal(insp.model.state_dict()[k], v) for k, v in before.items())
    assert not insp.model.training and lab.error.message == ""


def test_background_updates_are_latest_wins(setting):
    insp, test, _ = setting
    lab = CompressionLab(insp, test, synchronous=False)
    for s in (0.3, 0.5, 0.7, 0.95):
        lab.set_sparsity("fc2", s)
    assert lab.wait(60)
    _, want = _reference(insp, test, {"fc2": 0.95}, None)
    assert lab.accuracy == want and lab.error.message == ""


def test_retrain_and_finetune_keep_masks_and_move_centroids(setting):
    insp, test, train = setting
    lab = CompressionLab(insp, test, train_data=train, synchronous=True)
    lab.set_sparsity("fc1", 0.9)
    mask = lab.work.model.fc1.weight.detach() != 0
    run = lab.retrain_pruned(epochs=1, lr=1e-3)
    assert run.complete and lab.progress.value == 1.0 and lab.error.message == ""
    assert torch.equal(lab.work.model.fc1.weight.detach() != 0, mask)
    lab.set_bits("fc1", 3)
    books = lab.quantization().codebooks["fc1"].copy()
    run = lab.finetune(epochs=1, lr=1e-3)
    assert run.complete and lab.error.message == ""
    tuned = np.unique(lab.work.model.fc1.weight.detach().numpy())
    assert len(tuned) == 8 and not np.array_equal(np.sort(tuned), np.sort(books))
    assert torch.equal(lab.work.model.fc1.weight.detach() != 0, mask)
    with torch.no_grad():
        want = int((lab.work.model(insp.prepare(test[0])).argmax(1) == torch.from_numpy(test[1])).sum()) / len(test[1])
    assert lab.accuracy == want


def test_dsd_view_and_errors(setting):
    insp, test, _ = setting
    lab = CompressionLab(insp, test, synchronous=True)
    edges = np.linspace(-1, 1, 11)
    hist = tuple((label, np.arange(10), edges) for label in ("a", "b", "c", "d", "e"))
    result = DSDResult((0,), {"dense": np.array([0.9]), "sparse": np.array([0.91]), "re-dense": np.array([0.92]),
                              "baseline": np.array([0.92])}, hist,
                       {"dsd": (np.arange(3.0), np.ones(3)), "baseline": (np.arange(3.0), np.ones(3))}, "fc1", 0.3, 1)
    lab.show_dsd(result)
    assert len(lab.dsd_box.children[0].children) == 5
    lab.retrain_pruned()
    assert "train_data" in lab.error.message
    lab.finetune()
    assert "no layer shares weights" in lab.error.message
    with pytest.raises(Exception, match="sparsity"):
        lab.set_sparsity("fc1", 1.0)


def test_run_dsd_from_the_lab_draws_five_histograms_and_stops(setting):
    insp, test, train = setting
    lab = CompressionLab(insp, test, train_data=train, synchronous=True)
    lab.run_dsd(epochs=1)
    assert lab.error.message == "" and lab.dsd_result.complete
    assert len(lab.dsd_box.children[0].children) == 5 and lab.progress.value == pytest.approx(1.0)
    assert "baseline" in lab.dsd_box.children[1].children[1].value
    lab.dsd_result = None
    lab.dsd_box.children = []
    lab.progress.observe(lambda _: lab.stop(), names="value")  # Stop pressed once training shows progress
    lab.run_dsd(epochs=1)
    assert not lab.dsd_result.complete and lab.dsd_result.seeds == () and lab.error.message == ""
    assert lab.dsd_box.children == () and not lab.dsd_button.disabled
