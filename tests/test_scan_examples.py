"""Dataset-examples folders: saved and reopened equal, versioned by model and data set, written atomically."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

import ipynetviz as nv
from ipynetviz.engine.errors import DatasetError, InputError
from ipynetviz.methods.scan import (Correspondence, ExamplesMismatchError, TopPatches, open_examples, save_examples,
                                    scan)


@pytest.fixture(scope="module")
def nets():
    return nv.zoo.load("shapes-cnn", seed=0, device="cpu"), nv.zoo.load("shapes-cnn", seed=1, device="cpu")


@pytest.fixture(scope="module")
def images():
    return nv.zoo.shapes(200, split="test")


@pytest.fixture(scope="module")
def result(nets, images):
    a, b = nets
    return scan(a, images, [TopPatches(["conv1", "relu4", "fc"], k=5), Correspondence(b, "relu3")], batch_size=100)


def test_save_and_open_give_back_the_same_answers(nets, images, result, tmp_path):
    folder = result.save(tmp_path / "ex")
    index = json.loads((folder / "index.json").read_text())
    assert index["format"] == "ipynetviz-dataset-examples" and index["n_images"] == 200
    assert index["model_fingerprint"] == result.model_fingerprint and len(index["dataset_fingerprint"]) == 32
    assert len(list((folder / "crops" / "relu4").glob("unit_*.png"))) == 128
    start = time.perf_counter()
    ex = open_examples(folder, insp=nets[0], dataset=images)
    tp = ex.top_patches("relu4")
    corr = ex.correspondence("relu3", "relu3")
    assert time.perf_counter() - start < 2.0  # no forward pass: index, arrays and a 128 x 128 eigenproblem
    want = result.top_patches["relu4"]
    for name in ("channels", "scores", "image_indices", "positions", "boxes", "images", "image_slots"):
        np.testing.assert_array_equal(getattr(tp, name), getattr(want, name))
    np.testing.assert_array_equal(tp.crops(7), want.crops(7))
    assert tp.field == want.field and tp.k == 5
    strip = np.asarray(Image.open(folder / "crops" / "relu4" / "unit_0007.png"))
    np.testing.assert_array_equal(strip, np.concatenate(list(want.crops(7)), axis=2).transpose(1, 2, 0))
    assert ex.top_patches("fc").positions.min() == -1  # a layer without a map keeps whole images
    np.testing.assert_allclose(corr.correlation_.corr, result.correspondence["relu3", "relu3"].correlation_.corr,
                               atol=1e-12)
    assert corr.cka_ == pytest.approx(result.correspondence["relu3", "relu3"].cka_, abs=1e-12)
    np.testing.assert_array_equal(ex.labels, images[1])
    assert not list(tmp_path.glob(".*partial*"))


def test_a_folder_from_another_model_or_data_set_says_so(nets, images, result, tmp_path):
    folder = result.save(tmp_path / "ex")
    with pytest.raises(ExamplesMismatchError, match="another model.*scan this model again"):
        open_examples(folder, insp=nets[1])
    with pytest.raises(ExamplesMismatchError, match="another data set"):
        open_examples(folder, dataset=images[0][:50])
    with pytest.raises(DatasetError, match="no top patches of layer 'conv2'"):
        open_examples(folder).top_patches("conv2")
    with pytest.raises(DatasetError, match="not a dataset-examples folder"):
        open_examples(tmp_path)


def test_a_failed_save_or_scan_leaves_no_folder(nets, images, result, tmp_path, monkeypatch):
    calls = []
    real = Image.Image.save

    def flaky(self, *args, **kw):
        calls.append(1)
        if len(calls) == 40:
            raise OSError("disk full")
        return real(self, *args, **kw)

    monkeypatch.setattr(Image.Image, "save", flaky)
    with pytest.raises(OSError, match="disk full"):
        save_examples(result, tmp_path / "ex")
    monkeypatch.setattr(Image.Image, "save", real)
    assert list(tmp_path.iterdir()) == []
    # an existing folder survives a failed overwrite untouched, and is replaced by a good one
    folder = result.save(tmp_path / "ex")
    before = (folder / "index.json").read_text()
    calls.clear()
    monkeypatch.setattr(Image.Image, "save", flaky)
    with pytest.raises(OSError):
        result.save(folder)
    monkeypatch.setattr(Image.Image, "save", real)
    assert (folder / "index.json").read_text() == before and len(list(tmp_path.iterdir())) == 1
    # a scan that fails midway (images of mixed sizes without a resizing transform) writes nothing
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(4):
        Image.fromarray(images[0][i].transpose(1, 2, 0)).resize((64, 64 + 8 * (i // 2))).save(pics / f"{i}.png")
    with pytest.raises(InputError):
        scan(nets[0], pics, [TopPatches("conv1")], batch_size=2, save_to=tmp_path / "never")
    assert not (tmp_path / "never").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ex", "pics"]
    with pytest.raises(DatasetError, match="not a dataset-examples folder"):
        result.save(pics)


def test_a_stopped_scan_is_not_saved(nets, images, tmp_path):
    stop = threading.Event()
    stop.set()
    r = scan(nets[0], images, [TopPatches("conv1")], cancel=stop, save_to=tmp_path / "ex")
    assert not r.complete and not (tmp_path / "ex").exists()
    with pytest.raises(DatasetError, match="complete=False"):
        r.save(tmp_path / "ex")
