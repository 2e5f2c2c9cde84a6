"""top_patches(): equals a brute-force Python scan; every crop holds the unit's whole input-gradient support."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from ipynetviz.engine import Inspector, Preprocess, Unit, hooks_left
from ipynetviz.engine.errors import DatasetError, InputError, IpynetvizError, TargetError
from ipynetviz.methods.units import top_patches
from tests.conftest import small_cnn
from tests.ranking import assert_same_ranking

torch.set_num_threads(2)


def upto(model: nn.Sequential, layer: str) -> nn.Sequential:
    """The model truncated after ``layer``: an independent way to get activations."""
    names = [n for n, _ in model.named_children()]
    return model[:names.index(layer) + 1]


def brute_force(acts: np.ndarray, k: int | None, distinct: bool = True):
    """Per channel: [(score, image, y, x)] sorted by score desc, then image, then position; a plain loop."""
    n, c, h, w = acts.shape
    out = []
    for ch in range(c):
        cands = []
        for i in range(n):
            best = None
            for y in range(h):
                for x in range(w):
                    v = acts[i, ch, y, x]
                    if distinct:
                        if best is None or v > best[0]:
                            best = (v, i, y, x)
                    else:
                        cands.append((v, i, y, x))
            if distinct:
                cands.append(best)
        cands.sort(key=lambda t: (-t[0], t[1], t[2], t[3]))
        out.append(cands[:k])
    return out


@pytest.fixture(scope="module")
def model():
    m = small_cnn(seed=3)
    with torch.no_grad():  # one dead channel: all its scores are 0 after the ReLU, so ties must be handled
        m.conv2.bias[4] = -1e3
    return m.eval()


@pytest.fixture(scope="module")
def insp(model):
    return Inspector(model, input_size=(3, 24, 24), device="cpu")


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (37, 3, 24, 24), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("layer", ["conv1", "relu2", "pool2", "conv3"])
def test_equals_brute_force_scan(insp, model, images, layer):
    with torch.no_grad():
        acts = upto(model, layer)(images.float() / 255).numpy()
    res = top_patches(insp, images, layer, k=6, batch_size=10)
    ref = brute_force(acts, None)
    assert res.scores.shape == (acts.shape[1], 6)
    for ch in range(acts.shape[1]):
        ours = [(i, y, x) for i, (y, x) in zip(res.image_indices[ch].tolist(), res.positions[ch].tolist())]
        assert_same_ranking(ours, res.scores[ch], [t[1:] for t in ref[ch]], [t[0] for t in ref[ch]])
        assert len(set(res.image_indices[ch].tolist())) == 6  # distinct images
    if layer == "relu2":  # the dead channel: every image ties at 0 -> the first six images at (0, 0)
        assert res.image_indices[4].tolist() == list(range(6)) and not res.scores[4].any()
    assert hooks_left(model) == []


def test_all_positions_mode_and_batch_size_independence(insp, model, images):
    with torch.no_grad():
        acts = upto(model, "relu1")(images.float() / 255).numpy()
    res = top_patches(insp, images, "relu1", k=7, distinct_images=False, batch_size=8)
    ref = brute_force(acts, None, distinct=False)
    other = top_patches(insp, images, "relu1", k=7, distinct_images=False, batch_size=37)
    for ch in range(acts.shape[1]):
        for r in (res, other):  # any batch size ranks like the brute force (near-ties in any order)
            ours = [(i, y, x) for i, (y, x) in zip(r.image_indices[ch].tolist(), r.positions[ch].tolist())]
            assert_same_ranking(ours, r.scores[ch], [t[1:] for t in ref[ch]], [t[0] for t in ref[ch]])


def test_channel_subset_matches_full_scan(insp, images):
    full = top_patches(insp, images, "conv2", k=4)
    some = top_patches(insp, images, "conv2", channel=[9, 2], k=4)
    assert some.channels.tolist() == [9, 2]
    assert np.array_equal(some.image_indices, full.image_indices[[9, 2]])
    one = top_patches(insp, images, "conv2", channel=7, k=4)
    assert np.array_equal(one.for_channel(7).crops, full.crops(7))
    with pytest.raises(InputError, match="not scanned"):
        one.crops(3)


def test_crops_hold_the_gradient_support_and_the_right_pixels(insp, images):
    res = top_patches(insp, images, "relu2", k=4, pad_value=7)
    field = insp.receptive_field("relu2")
    h, w = images.shape[-2:]
    checked = 0
    for ch in (0, 3, 11):
        crops = res.crops(ch)
        assert crops.shape == (4, 3) + tuple(field.size)
        for j in range(4):
            i, (y, x) = int(res.image_indices[ch, j]), res.positions[ch, j]
            y0, x0, y1, x1 = res.boxes[ch, j]
            assert (y0, x0, y1, x1) == field.box(int(y), int(x))  # the engine's own box, unclipped
            xin = insp.prepare(images[i:i + 1])
            grad, score = insp.gradient_of(xin, Unit("relu2", ch, int(y), int(x)))
            assert np.isclose(float(score), res.scores[ch, j], rtol=1e-5)
            support = grad[0].abs().sum(0).numpy() > 0
            rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
            if len(rows):
                checked += 1
                assert y0 <= rows[0] and rows[-1] < y1 and x0 <= cols[0] and cols[-1] < x1
            # the crop is the image under the box, padded with pad_value outside the image
            img = images[i].numpy()
            for yy in range(y0, y1):
                for xx in range(x0, x1):
                    want = img[:, yy, xx] if (0 <= yy < h and 0 <= xx < w) else np.full(3, 7)
                    assert np.array_equal(crops[j, :, yy - y0, xx - x0], want)
    assert checked >= 6
    assert hooks_left(insp.model) == []


def test_fully_connected_layer_gives_whole_images(insp, model, images):
    res = top_patches(insp, images, "fc", k=3)
    with torch.no_grad():
        logits = model(images.float() / 255).numpy()
    for c in range(5):
        order = sorted(range(37), key=lambda i: (-logits[i, c], i))
        assert_same_ranking(res.image_indices[c], res.scores[c], order, logits[order, c])
    assert (res.positions == -1).all() and res.field is None
    crops = res.crops(2)
    assert crops.shape == (3, 3, 24, 24)
    assert np.array_equal(crops[0], images[res.image_indices[2, 0]].numpy())


def test_bad_input_is_clear_and_leaves_no_hooks(insp, images):
    with pytest.warns(UserWarning, match="only 5 images"):
        res = top_patches(insp, images[:5], "conv2", k=9)
    assert res.k == 5 and res.scores.shape == (16, 5) and "only 5" in res.note
    with pytest.raises(DatasetError, match="empty"):
        top_patches(insp, torch.zeros((0, 3, 24, 24), dtype=torch.uint8), "conv2")
    with pytest.raises(DatasetError, match="empty"):
        top_patches(insp, [], "conv2")
    mixed = [np.zeros((24, 24, 3), np.uint8), np.zeros((30, 20, 3), np.uint8)]
    with pytest.raises(InputError, match="mixed sizes"):
        top_patches(insp, mixed, "conv2")
    with pytest.raises(TargetError, match="16 channels"):
        top_patches(insp, images, "conv2", channel=16)
    with pytest.raises(InputError, match="positive integer"):
        top_patches(insp, images, "conv2", k=0)
    with pytest.raises(IpynetvizError, match="did you mean"):
        top_patches(insp, images, "conv_2")
    assert hooks_left(insp.model) == []


def test_mixed_sizes_resized_by_the_transform(model):
    rng = np.random.default_rng(0)
    mixed = [rng.integers(0, 256, (s, s + 4, 3), dtype=np.uint8) for s in (20, 30, 24, 40, 24)]
    prep = Preprocess(mean=[0.5] * 3, std=[0.25] * 3, size=(24, 24))
    insp = Inspector(model, transform=prep, input_size=(3, 24, 24), device="cpu")
    res = top_patches(insp, mixed, "conv1", k=2, batch_size=2)
    x = insp.prepare(mixed)
    with torch.no_grad():
        acts = upto(model, "conv1")(x).numpy()
    ref = brute_force(acts, None)
    for ch, r in enumerate(ref):
        assert_same_ranking(res.image_indices[ch, :1], res.scores[ch, :1], [t[1] for t in r], [t[0] for t in r])
    # crops come from the resized input the units saw, turned back into pixels
    assert res.images.shape[-2:] == (24, 24)
    i = int(res.image_indices[0, 0])
    assert np.array_equal(res.images[res.image_slots[0, 0]], prep.invert(x[i:i + 1])[0].numpy())


def test_torchvision_resnet18_equals_brute_force():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    insp = Inspector(net, input_size=(3, 64, 64), device="cpu")
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=g)
    res = top_patches(insp, images, "layer2", k=3, batch_size=5)
    captured = {}
    handle = net.layer2.register_forward_hook(lambda m, i, o: captured.setdefault("a", o))
    with torch.no_grad():
        net(images.float() / 255)
    handle.remove()
    ref = brute_force(captured["a"].numpy()[:, ::9], None)
    for r, ch in enumerate(range(0, 128, 9)):
        ours = [(i, y, x) for i, (y, x) in zip(res.image_indices[ch].tolist(), res.positions[ch].tolist())]
        assert_same_ranking(ours, res.scores[ch], [t[1:] for t in ref[r]], [t[0] for t in ref[r]])
    # layer2's 8x8 units see 99x99 pixels of a 64x64 input: crops are padded to the full field
    assert res.crops(0).shape == (3, 3, 99, 99)
    ch, j = 5, 0
    y, x = (int(v) for v in res.positions[ch, j])
    i = int(res.image_indices[ch, j])
    grad, _ = insp.gradient_of(insp.prepare(images[i:i + 1]), Unit("layer2", ch, y, x))
    support = grad[0].abs().sum(0).numpy() > 0
    rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
    y0, x0, y1, x1 = res.boxes[ch, j]
    assert len(rows) and y0 <= rows[0] and rows[-1] < y1 and x0 <= cols[0] and cols[-1] < x1
    assert hooks_left(net) == []


def test_progress_callback_reports_and_can_interrupt(insp, images):
    class Stop(Exception):
        pass
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done >= 20:
            raise Stop()
    with pytest.raises(Stop):
        top_patches(insp, images, "conv2", batch_size=10, progress=progress)
    assert seen == [(10, 37), (20, 37)]
    assert hooks_left(insp.model) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scan_equals_cpu_scan(model, images):
    cpu = top_patches(Inspector(model, input_size=(3, 24, 24), device="cpu"), images, "relu2", k=5)
    gpu_insp = Inspector(small_cnn(seed=3), input_size=(3, 24, 24), device="cuda")
    gpu_insp.model.load_state_dict(model.state_dict())
    gpu = top_patches(gpu_insp, images, "relu2", k=5, batch_size=16)
    assert gpu.image_indices.tolist() == cpu.image_indices.tolist()
    assert gpu.positions.tolist() == cpu.positions.tolist()
    np.testing.assert_allclose(gpu.scores, cpu.scores, rtol=1e-4, atol=1e-4)
    assert np.array_equal(gpu.crops(3), cpu.crops(3)) and hooks_left(gpu_insp.model) == []
