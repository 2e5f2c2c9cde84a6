"""nearest_neighbours(): equals a brute-force NumPy search in feature space and in pixel space."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torchvision

from ipynetviz.engine import Inspector, Preprocess, hooks_left
from ipynetviz.engine.errors import DatasetError, InputError
from ipynetviz.methods.units import nearest_neighbours
from tests.conftest import small_cnn
from tests.ranking import assert_same_ranking

torch.set_num_threads(2)


def brute_force(queries: np.ndarray, data: np.ndarray, k: int | None = None, skip=None):
    """Sorted (index, distance) of the k nearest rows (all with k=None) of ``data`` to each query: float64."""
    out = []
    for qi, q in enumerate(queries):
        d = np.sqrt(((data.astype(np.float64) - q.astype(np.float64)) ** 2).sum(1))
        order = [i for i in np.argsort(d, kind="stable") if skip is None or i != skip[qi]][:k]
        out.append((np.array(order), d[order]))
    return out


@pytest.fixture(scope="module")
def setup():
    model = small_cnn(seed=5).eval()
    prep = Preprocess(mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.25])
    insp = Inspector(model, transform=prep, input_size=(3, 20, 20), device="cpu")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (45, 3, 20, 20), dtype=torch.uint8, generator=g)
    images[30] = images[12]  # an exact duplicate: a tie that must go to the lower index
    x = prep(images)
    with torch.no_grad():
        feats = model[:6](x)  # up to relu2
    return insp, images, x.flatten(1).numpy(), feats.flatten(1).numpy()


def test_equals_brute_force(setup):
    insp, images, pixels, feats = setup
    q = [3, 12, 44]
    res = nearest_neighbours(insp, images, q, "relu2", k=6, batch_size=7)
    assert res.query_indices.tolist() == q and res.exclude_self
    for r, qi in enumerate(q):
        for space, data, idx, dist in (("feature", feats, res.feature_indices, res.feature_distances),
                                       ("pixel", pixels, res.pixel_indices, res.pixel_distances)):
            (ref_i, ref_d), = brute_force(data[[qi]], data, skip=[qi])
            # neighbours at (nearly) equal distances may come in either order: compare with a tolerance
            assert_same_ranking(idx[r], -dist[r], ref_i, -ref_d, rtol=1e-5, atol=1e-4)
    # the duplicate of image 12 is its nearest neighbour in both spaces, at distance 0
    assert res.feature_indices[1, 0] == 30 and res.pixel_indices[1, 0] == 30
    assert res.pixel_distances[1, 0] == pytest.approx(0, abs=1e-4)
    assert 0 <= res.overlap().min() and res.overlap().max() <= 1


def test_with_self_and_image_queries(setup):
    insp, images, pixels, feats = setup
    res = nearest_neighbours(insp, images, 30, "relu2", k=3, exclude_self=False)
    # image 30 equals image 12: distance 0 to both, and the tie goes to the lower index
    assert res.pixel_indices[0, :2].tolist() == [12, 30] and res.feature_indices[0, :2].tolist() == [12, 30]
    new = torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(9))
    res = nearest_neighbours(insp, images, new, "relu2", k=4)
    assert res.query_indices is None
    qx = insp.transform(new).flatten(1).numpy()
    for r, (ref_i, ref_d) in enumerate(brute_force(qx, pixels)):
        assert_same_ranking(res.pixel_indices[r], -res.pixel_distances[r], ref_i, -ref_d, rtol=1e-5, atol=1e-6)


def test_torchvision_alexnet_features():
    torch.manual_seed(0)
    net = torchvision.models.alexnet(weights=None).eval()
    insp = Inspector(net, input_size=(3, 96, 96), device="cpu")
    images = torch.randint(0, 256, (14, 3, 96, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    res = nearest_neighbours(insp, images, [0, 5], "features.7", k=4, batch_size=6)
    with torch.no_grad():
        f = net.features[:8](images.float() / 255).flatten(1).numpy()
    for r, qi in enumerate([0, 5]):
        (ref_i, ref_d), = brute_force(f[[qi]], f, skip=[qi])
        assert_same_ranking(res.feature_indices[r], -res.feature_distances[r], ref_i, -ref_d, rtol=1e-4, atol=1e-6)
    assert hooks_left(net) == []


def test_bad_input(setup):
    insp, images, _, _ = setup
    with pytest.warns(UserWarning, match="only 3 other images"):
        res = nearest_neighbours(insp, images[:4], 0, "relu2", k=10)
    assert res.feature_indices.shape == (1, 3) and 0 not in res.feature_indices
    with pytest.raises(DatasetError, match="empty"):
        nearest_neighbours(insp, torch.zeros((0, 3, 20, 20), dtype=torch.uint8), 0, "relu2")
    with pytest.raises(InputError, match="outside the data set"):
        nearest_neighbours(insp, images, 45, "relu2")
    with pytest.raises(InputError, match="positive integer"):
        nearest_neighbours(insp, images, 0, "relu2", k=0)
    with pytest.raises(InputError, match="channels"):
        nearest_neighbours(insp, images, torch.zeros(1, 1, 20, 20), "relu2")
    assert hooks_left(insp.model) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_brute_force(setup):
    insp, images, pixels, feats = setup
    gpu = Inspector(copy.deepcopy(insp.model), transform=insp.transform, input_size=(3, 20, 20), device="cuda")
    res = nearest_neighbours(gpu, images, [12, 40], "relu2", k=5, batch_size=8)
    for r, qi in enumerate([12, 40]):
        (ref_i, ref_d), = brute_force(feats[[qi]], feats, skip=[qi])
        assert_same_ranking(res.feature_indices[r], -res.feature_distances[r], ref_i, -ref_d, rtol=1e-4, atol=1e-3)
