"""The offline teaching zoo: data sets, shipped teaching CNNs (measured), loader and its errors."""
from __future__ import annotations

import colorsys
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipynetviz import zoo
from ipynetviz.engine import Inspector
from ipynetviz.engine.errors import IpynetvizError
from ipynetviz.zoo import _draw, train
from ipynetviz.zoo.load import IMAGENET_MEAN, IMAGENET_STD, weights_path
from ipynetviz.zoo.models import BUILDERS
from ipynetviz.zoo.pictures import filter_grid
from ipynetviz.zoo.quality import dead_units, evaluate, filter_smoothness

N_TEST_SHAPES = 2000  # a prefix of the fresh test split: enough for the thresholds, fast on 2 cores
REPO = Path(__file__).resolve().parents[1]


def _hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha1(im.tobytes()).hexdigest() for im in images}


@pytest.fixture(scope="module")
def shapes_test():
    return zoo.shapes(N_TEST_SHAPES, split="test")


# ------------------------------------------------------------------------------------------- shapes
def test_shapes_types_and_ranges():
    x, y = zoo.shapes(40, split="test", size=48, seed=3)
    assert x.shape == (40, 3, 48, 48) and x.dtype == np.uint8
    assert y.shape == (40,) and y.dtype == np.int64
    assert y.min() >= 0 and y.max() < len(zoo.shapes_classes) == 10
    assert len(set(zoo.shapes_classes)) == 10
    assert x.std() > 20  # cluttered pictures, not blank ones
    empty_x, empty_y = zoo.shapes(0)
    assert empty_x.shape == (0, 3, 64, 64) and empty_y.shape == (0,)


def test_shapes_deterministic_and_prefix_stable():
    a_x, a_y = zoo.shapes(30, split="train", seed=5)
    b_x, b_y = zoo.shapes(30, split="train", seed=5)
    np.testing.assert_array_equal(a_x, b_x)
    np.testing.assert_array_equal(a_y, b_y)
    long_x, long_y = zoo.shapes(530, split="train", seed=5)  # crosses a 500-image chunk
    np.testing.assert_array_equal(long_x[:30], a_x)
    np.testing.assert_array_equal(long_y[:30], a_y)
    assert not np.array_equal(long_x[500:530], a_x)
    other_x, _ = zoo.shapes(30, split="train", seed=6)
    assert not _hashes(other_x) & _hashes(a_x)


def test_shapes_class_balance():
    _, y = zoo.shapes(1000, split="train", seed=1, size=32)
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 100))


def test_shapes_train_and_test_are_disjoint(shapes_test):
    train_x, _ = zoo.shapes(N_TEST_SHAPES, split="train")
    test_x, _ = shapes_test
    assert len(_hashes(train_x)) == len(train_x)
    assert not _hashes(train_x) & _hashes(test_x)
    # not even near-copies: every test image differs from its closest train image in many pixels
    a = test_x[:200].reshape(200, -1).astype(np.float32)
    b = train_x.reshape(len(train_x), -1).astype(np.float32)
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T
    assert np.sqrt(np.maximum(d2.min(1), 0) / a.shape[1]).min() > 10


def test_shapes_bad_arguments():
    with pytest.raises(IpynetvizError, match="split"):
        zoo.shapes(5, split="validation")
    with pytest.raises(IpynetvizError, match="size"):
        zoo.shapes(5, size=8)
    with pytest.raises(IpynetvizError, match="n must be"):
        zoo.shapes(-1)


def test_hsv_to_rgb_matches_colorsys():
    rng = np.random.default_rng(0)
    hsv = rng.random((200, 3))
    ours = _draw.hsv_to_rgb(hsv[:, 0], hsv[:, 1], hsv[:, 2])
    ref = 255.0 * np.array([colorsys.hsv_to_rgb(*row) for row in hsv])
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_masks_cover_the_expected_area():
    # a square of circumradius r has area 2 r^2, a circle pi r^2, a ring pi (r^2 - r_in^2)
    r, size = 12.0, 64
    labels = np.array([0, 1, 5])
    extra = np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 0.0]])  # ring inner radius 0.55 r
    m = _draw.masks(labels, np.full(3, r), np.full(3, 0.3), np.full(3, 32.0), np.full(3, 32.0), extra, size)
    area = m.sum((1, 2))
    np.testing.assert_allclose(area, [np.pi * r * r, 2 * r * r, np.pi * r * r * (1 - 0.55 ** 2)], rtol=0.02)
    assert m.min() >= 0 and m.max() <= 1 and ((m > 0) & (m < 1)).any()  # antialiased edges


# ------------------------------------------------------------------------------------ digits/photos
def test_digits_split_and_upsampling():
    from sklearn.datasets import load_digits

    x_tr, y_tr = zoo.digits("train")
    x_te, y_te = zoo.digits("test")
    assert x_tr.shape[1:] == (1, 32, 32) and x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    assert len(x_tr) + len(x_te) == 1797
    np.testing.assert_allclose(np.bincount(y_te) / np.bincount(np.concatenate([y_tr, y_te])), 0.25, atol=0.02)
    np.testing.assert_array_equal(zoo.digits("test")[0], x_te)
    assert not np.array_equal(zoo.digits("test", seed=1)[1], y_te)
    # independent reference: torch's bilinear upsampling of the 0..16 originals; every image of the
    # split is one of them (to rounding), each original is used once, and the labels agree
    bunch = load_digits()
    ref = torch.nn.functional.interpolate(torch.tensor(bunch.images[:, None] * (255 / 16), dtype=torch.float32),
                                          size=(32, 32), mode="bilinear", align_corners=False)
    ref = ref.round().clamp(0, 255).reshape(len(ref), -1).double()
    ours = torch.from_numpy(np.concatenate([x_tr, x_te])).reshape(len(ref), -1).double()
    d2 = (ours ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * ours @ ref.T
    nearest = d2.argmin(1).numpy()
    assert d2.min(1).values.max() <= 32 * 32 + 1e-6  # at most one grey level off per pixel
    assert len(set(nearest.tolist())) == len(ref)
    np.testing.assert_array_equal(bunch.target[nearest], np.concatenate([y_tr, y_te]))


def test_photos():
    images, names = zoo.photos()
    assert names == ["china", "flower"]
    assert images.shape == (2, 3, 427, 640) and images.dtype == np.uint8
    small, _ = zoo.photos(size=64)
    assert small.shape == (2, 3, 64, 64)
    # the centre crop resized: close to a direct PIL reference
    ref = np.asarray(Image.fromarray(images[0].transpose(1, 2, 0)[:, 106:533]).resize((64, 64), Image.LANCZOS))
    assert np.abs(small[0].transpose(1, 2, 0).astype(int) - ref).mean() < 1


# ------------------------------------------------------------------------------------------ quality
def _smoothness_loop(w: np.ndarray) -> float:
    vals = []
    for f in w.reshape(-1, *w.shape[-2:]):
        h = np.corrcoef(f[:, :-1].ravel(), f[:, 1:].ravel())[0, 1]
        v = np.corrcoef(f[:-1, :].ravel(), f[1:, :].ravel())[0, 1]
        vals.append((h + v) / 2)
    return float(np.mean(vals))


def test_filter_smoothness_matches_brute_force():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((16, 3, 7, 7))
    smooth = gaussian_filter(noise, sigma=(0, 0, 1.5, 1.5))
    assert filter_smoothness(noise) == pytest.approx(_smoothness_loop(noise), abs=1e-9)
    assert filter_smoothness(smooth) == pytest.approx(_smoothness_loop(smooth), abs=1e-9)
    assert abs(filter_smoothness(noise)) < 0.15 < 0.6 < filter_smoothness(smooth)
    assert filter_smoothness(torch.tensor(smooth)) == pytest.approx(filter_smoothness(smooth))


def test_dead_units_match_brute_force():
    torch.manual_seed(0)
    model = zoo.digits_cnn()
    with torch.no_grad():
        model.conv2.bias[:5] = -1e4  # five channels that can never fire
    x = torch.randn(20, 1, 32, 32)
    dead = dead_units(model, x, batch_size=7)
    ref = {}
    h = x
    with torch.no_grad():
        for name, module in model.named_children():
            h = module(h)
            if name.startswith("conv"):
                ref[name] = int((h.amax(dim=(0, 2, 3)) <= 0).sum())
    assert dead == ref and dead["conv2"] >= 5
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training  # the caller's mode is restored
    labels = torch.arange(20) % 10
    ev = evaluate(model, x, labels, batch_size=6)
    assert ev.dead_units == ref and ev.units == {"conv1": 32, "conv2": 64, "conv3": 64, "conv4": 128}
    model.eval()
    assert ev.accuracy == pytest.approx(float((model(x).argmax(1) == labels).float().mean()))


# ------------------------------------------------------------------------------- shipped weights
@pytest.mark.parametrize("name", ["shapes-cnn", "digits-cnn"])
@pytest.mark.parametrize("seed", [0, 1])
def test_shipped_weights_load_with_weights_only(name, seed):
    state = torch.load(weights_path(name, seed), map_location="cpu", weights_only=True)
    model = BUILDERS[name]()
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state)
    info = json.loads(weights_path(name, seed).with_suffix(".json").read_text())
    assert info["name"] == name and info["seed"] == seed
    assert len(info["mean"]) == len(info["std"]) == info["input_size"][0]
    assert info["class_names"] == (zoo.shapes_classes if name == "shapes-cnn" else zoo.digits_classes)
    total = sum(p.stat().st_size for p in weights_path(name, seed).parent.glob("*.pt"))
    assert total < 8e6  # a few MB in all


def _measure(name: str, seed: int, images: np.ndarray, labels: np.ndarray):
    insp = zoo.load(name, seed=seed)
    assert isinstance(insp, Inspector)
    x = insp.prepare(images)
    info = zoo.metrics(name, seed)
    # the inspector's transform is exactly the normalisation the net was trained with
    ref = train.normalise(torch.from_numpy(images[:8]).to(x.device), info["mean"], info["std"])
    torch.testing.assert_close(x[:8], ref)
    with insp.eval_guard():
        ev = evaluate(insp.model, x, torch.from_numpy(labels))  # one pass: accuracy and unit maxima
    return ev.accuracy, filter_smoothness(insp.model.conv1.weight), ev.dead_units, ev.units


@pytest.mark.parametrize("seed", [0, 1])
def test_shapes_cnn_meets_the_bar(seed, shapes_test):
    accuracy, smooth, dead, units = _measure("shapes-cnn", seed, *shapes_test)
    assert accuracy >= 0.90
    assert smooth >= 0.6
    assert all(dead[n] <= 0.1 * units[n] for n in units), dead
    assert len(units) >= 4 and units["conv1"] >= 32
    assert zoo.load("shapes-cnn", seed=seed).model.conv1.kernel_size[0] >= 5


@pytest.mark.parametrize("seed", [0, 1])
def test_digits_cnn_meets_the_bar(seed):
    accuracy, smooth, dead, units = _measure("digits-cnn", seed, *zoo.digits("test"))
    assert accuracy >= 0.97
    assert smooth >= 0.6
    assert all(dead[n] <= 0.1 * units[n] for n in units), dead


def test_seeds_differ_and_init_is_not_smooth():
    a = zoo.load_teaching_model("shapes-cnn", 0)[0].conv1.weight
    b = zoo.load_teaching_model("shapes-cnn", 1)[0].conv1.weight
    assert not torch.equal(a, b)
    torch.manual_seed(0)
    assert abs(filter_smoothness(zoo.shapes_cnn().conv1.weight)) < 0.1  # the bar is not met by chance


def test_filter_picture_in_docs_matches_the_shipped_weights():
    weight = zoo.load_teaching_model("shapes-cnn", 0)[0].conv1.weight
    picture = filter_grid(weight, scale=10, pad=3)
    shipped = np.asarray(Image.open(REPO / "docs" / "filters_shapes-cnn.png").convert("RGB"))
    np.testing.assert_array_equal(picture, shipped)
    # zero weight is mid-grey; every filter uses the full range on one side at least
    tiny = filter_grid(np.zeros((2, 3, 3, 3)), scale=1, pad=1)
    assert set(np.unique(tiny[1:4, 1:4])) == {128}


# ------------------------------------------------------------------------------------- loader
def test_load_teaching_model_inspector():
    insp = zoo.load("shapes-cnn")
    assert insp.layers[:4] == ["conv1", "relu1", "pool1", "conv2"]
    assert insp.class_names == zoo.shapes_classes
    relus = [n for n in insp.layers if n.startswith("relu")]
    assert len(relus) == 4 and all(not insp.module(n).inplace for n in relus)
    assert insp.layer_info("fc").output_shape[-1] == 10
    assert zoo.load("digits-cnn", seed=1).class_names == [str(d) for d in range(10)]
    assert zoo.shipped_seeds("shapes-cnn") == [0, 1]


def test_unknown_name_and_seed():
    with pytest.raises(IpynetvizError, match="unknown model 'shapes_cnn'.*shapes-cnn") as err:
        zoo.load("shapes_cnn")
    assert "digits-cnn" in str(err.value) and "resnet18" in str(err.value)
    with pytest.raises(IpynetvizError, match="seed 7.*shipped seeds: \\[0, 1\\]"):
        zoo.load("shapes-cnn", seed=7)
    assert zoo.available()[:2] == ["shapes-cnn", "digits-cnn"]
    assert {"resnet18", "alexnet", "vgg16"} <= set(zoo.available())


def test_pretrained_not_offline_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    with pytest.raises(IpynetvizError, match="not available offline") as err:
        zoo.load("resnet18", pretrained=True)
    assert "shapes-cnn" in str(err.value) and "pretrained=False" in str(err.value)
    assert not any(tmp_path.rglob("*.pth"))  # nothing was downloaded


def test_pretrained_uses_the_local_cache(monkeypatch, tmp_path):
    from torchvision import models

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    weights = models.get_model_weights("squeezenet1_1").DEFAULT
    torch.manual_seed(123)
    fake = models.get_model("squeezenet1_1", weights=None).state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(fake, tmp_path / "checkpoints" / Path(weights.url).name)
    insp = zoo.load("squeezenet1_1", pretrained=True)
    torch.testing.assert_close(insp.model.state_dict()["features.0.weight"].cpu(), fake["features.0.weight"])
    assert insp.class_names == list(weights.meta["categories"])


def test_random_torchvision_offline():
    a = zoo.load("resnet18", pretrained=False, seed=3)
    b = zoo.load("resnet18", pretrained=False, seed=3)
    assert a.class_names == [str(i) for i in range(1000)]
    assert torch.equal(a.model.conv1.weight, b.model.conv1.weight)
    x = a.prepare(np.zeros((1, 3, 100, 120), np.uint8))  # resized to 224
    assert tuple(x.shape) == (1, 3, 224, 224)
    torch.testing.assert_close(x[0, :, 0, 0].cpu(), -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD))


# ----------------------------------------------------------------------------------------- training
def test_channel_stats_match_numpy():
    x = np.random.default_rng(0).integers(0, 256, (50, 3, 9, 7), dtype=np.uint8)
    mean, std = train.channel_stats(x)
    np.testing.assert_allclose(mean, (x / 255.0).mean(axis=(0, 2, 3)), atol=1e-12)
    np.testing.assert_allclose(std, (x / 255.0).std(axis=(0, 2, 3)), atol=1e-12)


def test_augment_keeps_the_pixels():
    x = torch.arange(4 * 2 * 6 * 6, dtype=torch.int64).reshape(4, 2, 6, 6).to(torch.uint8)
    gen = torch.Generator().manual_seed(0)
    sym = train._augment(x, gen, symmetries=True, max_shift=0)
    for a, b in zip(x, sym):  # each image is one of the 8 symmetries of the square
        variants = [a, a.flip(-1), a.flip(-2), a.flip(-1).flip(-2)]
        variants += [v.transpose(-1, -2) for v in variants]
        assert any(torch.equal(b, v) for v in variants)
    shifted = train._augment(x, gen, symmetries=False, max_shift=2)
    for a, b in zip(x, shifted):  # a translation with black fill
        assert any(torch.equal(b, torch.nn.functional.pad(a, (2, 2, 2, 2))[:, dy:dy + 6, dx:dx + 6])
                   for dy in range(5) for dx in range(5))


def test_training_is_deterministic_and_saves_loadable_files(tmp_path):
    config = replace(train.DEFAULTS["digits-cnn"], epochs=1, n_train=320, warmup_epochs=0.5)
    m1, info = train.train(config, log=lambda _: None)
    m2, _ = train.train(config, log=lambda _: None)
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    torch.manual_seed(0)
    assert not torch.equal(m1.conv1.weight, zoo.digits_cnn().conv1.weight)  # it did train
    path = train.save(m1, info, tmp_path)
    state = torch.load(path, weights_only=True)
    assert torch.equal(state["fc.weight"], m1.fc.weight)
    saved = json.loads(path.with_suffix(".json").read_text())
    assert set(saved) >= {"test_accuracy", "conv1_smoothness", "dead_units", "mean", "std", "class_names",
                          "input_size", "settings"}
    assert saved["settings"]["epochs"] == 1 and saved["test_images"] == len(zoo.digits("test")[0])
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    assert "test accuracy" in train.summary(saved)
