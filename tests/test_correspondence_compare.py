"""compare() and layer_grid() on real small CNNs and torchvision ResNet-18s, against hand-run references."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ipynetviz.engine import Inspector, hooks_left
from ipynetviz.engine.errors import LayerNotFoundError
from ipynetviz.methods.correspondence import (SpatialSizeError, bipartite_matching, compare, layer_grid, linear_cka,
                                              semi_matching, svcca)
from ipynetviz.methods.correspondence._inputs import align_spatial, flatten_positions

from .conftest import small_cnn

torch.set_num_threads(2)


def reference_acts(model, x, layer):
    """The layer's output, captured by a hook registered here (not through the engine)."""
    out = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: out.setdefault("o", o))
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(x)
        model.train(was)
    finally:
        handle.remove()
    return out["o"].detach().double().cpu()


def corrcoef_block(a, b):
    a, b = flatten_positions(a).numpy(), flatten_positions(b).numpy()
    return np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:]


@pytest.fixture
def x():
    return torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_two_seeds_match_references(x):
    net_a, net_b = small_cnn(seed=0), small_cnn(seed=1)
    ia, ib = Inspector(net_a, input_size=(3, 32, 32)), Inspector(net_b, input_size=(3, 32, 32))
    c = compare(ia, ib, x, "conv2", batch_size=7)
    ra = reference_acts(net_a, x.to(ia.device), "conv2")
    rb = reference_acts(net_b, x.to(ib.device), "conv2")
    ref = corrcoef_block(ra, rb)
    np.testing.assert_allclose(c.correlation_.corr, ref, atol=1e-5)
    np.testing.assert_allclose(c.within_a_.corr, corrcoef_block(ra, ra), atol=1e-5)
    np.testing.assert_allclose(c.within_b_.corr, corrcoef_block(rb, rb), atol=1e-5)
    np.testing.assert_array_equal(c.bipartite_.pairs, bipartite_matching(ref).pairs)
    np.testing.assert_array_equal(c.semi_.pairs, semi_matching(ref).pairs)
    assert c.cka_ == pytest.approx(linear_cka(ra, rb), abs=1e-6)
    np.testing.assert_allclose(c.svcca_.corr, svcca(ra, rb, keep=0.99).corr, atol=1e-6)
    assert (c.n_images, c.n_samples) == (24, 24 * 16 * 16)
    s = c.summary()
    assert s["bipartite_median"] == pytest.approx(np.median(c.bipartite_.matched_corr))
    assert s["units_a"] == 16 and s["cka"] == c.cka_
    assert hooks_left(net_a) == [] and hooks_left(net_b) == []
    assert net_a.training and net_b.training        # modes restored


def test_permuted_copy_is_matched_back(x):
    """A network with conv1's channels permuted computes the same function: bipartite matching finds the permutation."""
    net_a = small_cnn(seed=2)
    net_b = copy.deepcopy(net_a)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        net_b.conv1.weight.copy_(net_a.conv1.weight[perm])
        net_b.conv1.bias.copy_(net_a.conv1.bias[perm])
        net_b.conv2.weight.copy_(net_a.conv2.weight[:, perm])
    ia, ib = Inspector(net_a, input_size=(3, 32, 32)), Inspector(net_b, input_size=(3, 32, 32))
    c1 = compare(ia, ib, x, "conv1")
    # B's channel j is A's channel perm[j]
    expected = sorted((int(perm[j]), j) for j in range(8))
    assert [tuple(p) for p in c1.bipartite_.pairs.tolist()] == expected
    np.testing.assert_allclose(c1.bipartite_.matched_corr, 1.0, atol=1e-5)
    assert c1.cka_ == pytest.approx(1.0, abs=1e-6) and c1.svcca_.mean == pytest.approx(1.0, abs=1e-6)
    c2 = compare(ia, ib, x, "conv2")
    assert c2.bipartite_.pairs.tolist() == [[i, i] for i in range(16)]


def test_uint8_dataset_spatial_alignment_and_errors():
    net = small_cnn(seed=0)
    insp = Inspector(net, input_size=(3, 32, 32))
    imgs = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = np.arange(10) % 5
    with pytest.raises(SpatialSizeError, match="align"):
        compare(insp, insp, imgs, "conv1", "conv2")
    c = compare(insp, insp, (imgs, labels), "conv1", "conv2", align="pool")
    x = insp.prepare(imgs)
    r1, r2 = align_spatial(reference_acts(net, x, "conv1"), reference_acts(net, x, "conv2"), mode="pool")
    np.testing.assert_allclose(c.correlation_.corr, corrcoef_block(r1, r2), atol=1e-5)
    with pytest.raises(LayerNotFoundError, match="conv1"):
        compare(insp, insp, imgs, "conv_1")
    flat = compare(insp, insp, imgs, "flat")                         # 10 samples for 16 + 16 units
    assert flat.svcca_ is None and "undefined" in flat.notes[0] and flat.cka_ == pytest.approx(1.0)
    assert hooks_left(net) == []


def test_torchvision_resnets_with_random_weights():
    # On CUDA, TF32 convolutions (the default) differ by ~1e-3 between batch sizes; compare in full float32.
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        _resnets_match_reference()


def _resnets_match_reference():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ra_net = tv.models.resnet18(weights=None, num_classes=10)
    torch.manual_seed(1)
    rb_net = tv.models.resnet18(weights=None, num_classes=10)
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ia, ib = Inspector(ra_net, input_size=(3, 32, 32)), Inspector(rb_net, input_size=(3, 32, 32))
    c = compare(ia, ib, x, "layer1.0.conv1", batch_size=4)
    a = reference_acts(ra_net, x.to(ia.device), "layer1.0.conv1")
    b = reference_acts(rb_net, x.to(ib.device), "layer1.0.conv1")
    np.testing.assert_allclose(c.correlation_.corr, corrcoef_block(a, b), atol=1e-5)
    assert c.correlation_.shape == (64, 64) and c.n_samples == 6 * 8 * 8
    assert hooks_left(ra_net) == [] and hooks_left(rb_net) == []


def test_layer_grid_cka_and_svcca(x):
    net_a, net_b = small_cnn(seed=0), small_cnn(seed=1)
    ia, ib = Inspector(net_a, input_size=(3, 32, 32)), Inspector(net_b, input_size=(3, 32, 32))
    same = layer_grid(ia, ia, x, keep=0.99, batch_size=10)
    assert same.layers_a == ("conv1", "conv2", "conv3") and same.cka.shape == (3, 3)
    np.testing.assert_allclose(np.diag(same.cka), 1.0, atol=1e-8)
    np.testing.assert_allclose(np.diag(same.svcca), 1.0, atol=1e-6)
    np.testing.assert_allclose(same.cka, same.cka.T, atol=1e-10)
    grid = layer_grid(ia, ib, x, layers_a=["conv1", "conv3"], layers_b=["conv2", "conv3"])
    a = reference_acts(net_a, x.to(ia.device), "conv1")
    b = reference_acts(net_b, x.to(ib.device), "conv2")
    assert grid.cka[0, 0] == pytest.approx(linear_cka(*align_spatial(a, b, mode="pool")), abs=1e-6)
    a3 = reference_acts(net_a, x.to(ia.device), "conv3")
    b3 = reference_acts(net_b, x.to(ib.device), "conv3")
    assert grid.svcca[1, 1] == pytest.approx(svcca(a3, b3, keep=0.99).mean, abs=1e-6)
    assert grid.to_numpy() is grid.cka and grid.n_images == 24
