"""In-process scans: equal to top_patches and compare, folders with corrupt files, cancel/progress, bad input."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

import ipynetviz as nv
from ipynetviz import methods
from ipynetviz.engine import Inspector, Preprocess
from ipynetviz.engine.errors import DatasetError, InputError, LayerNotFoundError, SettingError
from ipynetviz.engine.folder import ImageFolder
from ipynetviz.methods.scan import Correspondence, TopPatches, scan


@pytest.fixture(scope="module")
def nets():
    return nv.zoo.load("shapes-cnn", seed=0, device="cpu"), nv.zoo.load("shapes-cnn", seed=1, device="cpu")


@pytest.fixture(scope="module")
def images():
    return nv.zoo.shapes(300, split="test")[0]


def test_scan_equals_top_patches_and_compare(nets, images):
    a, b = nets
    r = scan(a, images, [TopPatches(["conv1", "relu3"], k=9), Correspondence(b, "relu4")], batch_size=64)
    assert r.complete and r.n_images == 300 and r.skipped == () and r.engine == "local"
    for layer in ("conv1", "relu3"):
        ref = methods.top_patches(a, images, layer, k=9, batch_size=100)
        got = r.top_patches[layer]
        np.testing.assert_array_equal(got.image_indices, ref.image_indices)
        np.testing.assert_array_equal(got.scores, ref.scores)
        np.testing.assert_array_equal(got.boxes, ref.boxes)
        np.testing.assert_array_equal(got.crops(5), ref.crops(5))
    ref = methods.compare(a, b, images, "relu4")
    got = r.correspondence[("relu4", "relu4")]
    np.testing.assert_allclose(got.correlation_.corr, ref.correlation_.corr, atol=1e-12)
    assert got.cka_ == pytest.approx(ref.cka_, abs=1e-12)
    np.testing.assert_array_equal(got.bipartite_.pairs, ref.bipartite_.pairs)
    np.testing.assert_array_equal(r.to_numpy(), r.top_patches["conv1"].scores)


def write_folder(root, images, labels, corrupt=True):
    """An ImageFolder layout: PNG and JPEG files per class, plus a corrupt JPEG, a truncated PNG and a text file."""
    paths = []
    for i, (im, label) in enumerate(zip(images, labels)):
        d = root / f"class{int(label)}"
        d.mkdir(exist_ok=True)
        p = d / (f"{i:04d}.png" if i % 2 else f"{i:04d}.jpg")
        Image.fromarray(im.transpose(1, 2, 0)).save(p, quality=95)
        paths.append(p)
    if corrupt:
        (root / "class0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        good = paths[1].read_bytes()
        (root / "class1" / "truncated.png").write_bytes(good[: len(good) // 3])
        (root / "class1" / "README.txt").write_text("labels come from the folder names")
        (root / "class0" / ".hidden.png").write_bytes(b"ignored: hidden")
    return paths


def test_folder_with_corrupt_and_non_image_files_is_scanned_and_they_are_listed(nets, images, tmp_path):
    a, _ = nets
    labels = np.arange(40) % 3
    write_folder(tmp_path, images[:40], labels)
    data = ImageFolder(tmp_path)
    assert data.class_names == ["class0", "class1", "class2"] and len(data) == 43
    r = scan(a, tmp_path, [TopPatches("relu2", k=4)], batch_size=16)
    assert r.n_images == 40 and r.n_files == 43 and r.complete
    assert sorted(p for p, _ in r.skipped) == ["class0/broken.jpg", "class1/README.txt", "class1/truncated.png"]
    assert "not an image" in dict(r.skipped)["class1/README.txt"]
    # ids are positions in the sorted listing; scores equal a scan of the decoded images
    decoded = [np.asarray(Image.open(tmp_path / p).convert("RGB")).transpose(2, 0, 1)
               for p in data.paths if p not in dict(r.skipped)]
    ref = methods.top_patches(a, np.stack(decoded), "relu2", k=4)
    ok = [i for i, p in enumerate(data.paths) if p not in dict(r.skipped)]
    np.testing.assert_array_equal(r.top_patches["relu2"].image_indices, np.asarray(ok)[ref.image_indices])
    # (batches differ: the scan's hold 15-16 readable files, the reference's all 40; float rounding may too)
    np.testing.assert_allclose(r.top_patches["relu2"].scores, ref.scores, rtol=1e-5, atol=1e-6)
    assert r.labels is not None and r.labels.shape == (43,)


def test_flat_folder_and_mixed_sizes(nets, images, tmp_path):
    a, _ = nets
    for i in range(6):
        Image.fromarray(images[i].transpose(1, 2, 0)).resize((64 + 8 * (i % 2), 64)).save(tmp_path / f"{i}.png")
    with pytest.raises(InputError, match=r"Preprocess\(mean, std, size"):
        scan(a, tmp_path, [TopPatches("conv1", k=2)], batch_size=6)
    resized = Inspector(a.model, transform=Preprocess(a.transform.mean, a.transform.std, size=(64, 64)),
                        input_size=(3, 64, 64), device="cpu")
    r = scan(resized, str(tmp_path), [TopPatches("conv1", k=2)], batch_size=4)
    assert r.n_images == 6 and r.labels is None and r.top_patches["conv1"].images.shape[1:] == (3, 64, 64)


def test_bad_input_names_the_fix(nets, images, tmp_path):
    a, _ = nets
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="holds no files"):
        scan(a, empty, [TopPatches("conv1")])
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"nope")
    (junk / "b.txt").write_text("nope")
    with pytest.raises(DatasetError, match="none of the 2 files"):
        scan(a, junk, [TopPatches("conv1")])
    with pytest.raises(DatasetError, match="not a folder"):
        scan(a, tmp_path / "missing", [TopPatches("conv1")])
    with pytest.raises(LayerNotFoundError, match="conv3"):
        scan(a, images[:8], [TopPatches("conv_3")])
    with pytest.raises(SettingError, match="nothing to scan"):
        scan(a, images[:8], [])
    with pytest.raises(SettingError, match="engine"):
        scan(a, images[:8], [TopPatches("conv1")], engine="spark")
    with pytest.raises(InputError, match="engine='ray'"):
        scan(a, images[:8], [TopPatches("conv1")], num_actors=2)


def test_cancel_progress_and_callback(nets, images):
    a, b = nets
    stop, seen, partials = threading.Event(), [], []

    def progress(done, total):
        seen.append((done, total))
        if done >= 100:
            stop.set()

    r = scan(a, images, [TopPatches("conv2", k=3), Correspondence(b, "conv2")], batch_size=50, progress=progress,
             cancel=stop, callback=partials.append, callback_every=1)
    assert not r.complete and r.n_images == 100 and seen[:2] == [(50, 300), (100, 300)]
    assert [p.n_images for p in partials] == [50, 100] and not partials[0].complete
    assert r.top_patches["conv2"].image_indices.max() < 100


def test_ray_missing_names_the_install_command(nets, images, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(ImportError, match=r"pip install 'ipynetviz\[scale\]'"):
        scan(nets[0], images[:8], [TopPatches("conv1")], engine="ray")


def test_a_torchvision_data_set_and_zoo_pairs_are_scanned_like_arrays(nets):
    from torchvision.datasets import FakeData

    fake = FakeData(size=24, image_size=(3, 64, 64), num_classes=3, random_offset=7)
    arrays = np.stack([np.asarray(fake[i][0]).transpose(2, 0, 1) for i in range(24)])
    r = scan(nets[0], fake, [TopPatches("relu3", k=3)], batch_size=8)
    ref = scan(nets[0], (arrays, [fake[i][1] for i in range(24)]), [TopPatches("relu3", k=3)], batch_size=8)
    np.testing.assert_array_equal(r.top_patches["relu3"].image_indices, ref.top_patches["relu3"].image_indices)
    np.testing.assert_array_equal(r.top_patches["relu3"].scores, ref.top_patches["relu3"].scores)
    np.testing.assert_array_equal(r.labels, ref.labels)


def test_a_folder_is_read_in_the_models_channels(tmp_path):
    digits = nv.zoo.load("digits-cnn", seed=0, device="cpu")
    images = nv.zoo.digits("test")[0][:6]
    for i, im in enumerate(images):
        Image.fromarray(np.asarray(im).reshape(-1, *im.shape[-2:])[0]).convert("RGB").save(tmp_path / f"{i}.png")
    r = scan(digits, tmp_path, [TopPatches("conv1", k=2)])
    assert r.n_images == 6 and r.top_patches["conv1"].images.shape[1] == 1
