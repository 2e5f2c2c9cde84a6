"""Embeddings: torch PCA against scikit-learn, t-SNE quality, live frames, cancel, bad input, layer maps."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors
from torch import nn

from ipynetviz.engine import Inspector
from ipynetviz.engine.errors import InputError, IpynetvizError, LayerNotFoundError
from ipynetviz.methods.embedding import (EmbeddingWarning, embed, embed_features, embed_pixels, layer_features,
                                         map_trustworthiness, pca)
from ipynetviz.methods.embedding.tsne import exact_knn

torch.set_num_threads(2)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x, y


@pytest.fixture(scope="module")
def low_rank():
    """800 x 300 features with a decaying spectrum, far from the origin (tests the implicit centring)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((800, 40)) * (20.0 / np.arange(1, 41))
    w = rng.standard_normal((40, 300)) / np.sqrt(40)
    return (z @ w + 0.05 * rng.standard_normal((800, 300)) + 3.0).astype(np.float32)


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, 10))


def no_hooks(model):
    return all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in model.modules())


# ----------------------------------------------------------------------------------------------- PCA
@pytest.mark.parametrize("device", DEVICES)
def test_pca_matches_sklearn_up_to_sign(digits, device):
    x, _ = digits
    ref = PCA(n_components=3, svd_solver="full")
    want = ref.fit_transform(x)
    got = pca(x, 3, device=device)
    assert got.solver == "exact" and got.coords.device.type == device
    c = got.to_numpy()
    scale = np.abs(want).max()
    np.testing.assert_allclose(np.abs(c), np.abs(want), atol=1e-4 * scale)
    np.testing.assert_allclose(got.explained_variance_ratio.cpu().numpy(), ref.explained_variance_ratio_,
                               rtol=1e-4)
    np.testing.assert_allclose(got.explained_variance.cpu().numpy(), ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(np.abs(got.components.cpu().numpy()), np.abs(ref.components_), atol=1e-4)


def test_pca_wide_matrix_uses_the_small_gram_side(digits):
    x, _ = digits
    wide = x[:60]  # 60 x 64 ... and transposed-shaped case 40 x 64 -> N < D
    for sub in (wide, x[:40]):
        ref = PCA(n_components=2, svd_solver="full").fit(sub)
        got = pca(sub, 2)
        np.testing.assert_allclose(np.abs(got.to_numpy()), np.abs(ref.transform(sub)), atol=1e-3)
        np.testing.assert_allclose(got.explained_variance_ratio.numpy(), ref.explained_variance_ratio_, rtol=1e-3)


def test_randomized_pca_matches_covariance_eigendecomposition(low_rank):
    x = low_rank.astype(np.float64)
    xc = x - x.mean(0)
    evals, evecs = np.linalg.eigh(xc.T @ xc / (len(x) - 1))  # the textbook definition, in float64
    want = xc @ evecs[:, ::-1][:, :2]
    got = pca(low_rank, 2, seed=3, solver="randomized")
    assert got.solver == "randomized"
    assert pca(np.random.default_rng(0).random((1001, 1001)), 2).solver == "randomized"  # the automatic switch
    scale = np.abs(want).max()
    np.testing.assert_allclose(np.abs(got.to_numpy()), np.abs(want), atol=1e-3 * scale)
    np.testing.assert_allclose(got.explained_variance.numpy(), evals[::-1][:2], rtol=1e-3)
    np.testing.assert_allclose(got.explained_variance_ratio.numpy(), evals[::-1][:2] / evals.sum(), rtol=1e-3)


def test_pca_sign_convention_is_deterministic(digits):
    x, _ = digits
    a, b = pca(x, 2), pca(-x + 5.0, 2)  # negated data: same axes, opposite projections
    comps = a.components.numpy()
    assert np.all(comps[np.arange(2), np.abs(comps).argmax(1)] > 0)  # largest loading positive
    np.testing.assert_allclose(b.to_numpy(), -a.to_numpy(), atol=1e-3)
    r1, r2 = pca(x[:1500], 2, solver="randomized", seed=7), pca(x[:1500], 2, solver="randomized", seed=7)
    np.testing.assert_array_equal(r1.to_numpy(), r2.to_numpy())


def test_embed_features_pca_result(digits):
    x, y = digits
    e = embed_features(x, "pca", labels=y)
    assert e.coords.shape == (len(x), 2) and e.coords.dtype == np.float32
    np.testing.assert_array_equal(e.indices, np.arange(len(x)))
    np.testing.assert_array_equal(e.labels, y)
    assert e.method == "pca" and e.has_labels and not e.cancelled
    assert e.settings["n_features"] == 64 and e.explained_variance_ratio.shape == (2,)
    assert e.trustworthiness == pytest.approx(trustworthiness(x, e.coords, n_neighbors=10), abs=2e-3)
    with pytest.raises(ValueError):
        e.coords[0, 0] = 1.0  # results are read-only


# ------------------------------------------------------------------------- neighbours, trustworthiness
def test_exact_knn_matches_sklearn():
    x = np.random.default_rng(0).standard_normal((500, 12))
    idx, dist = exact_knn(torch.from_numpy(x).float(), 7, max_block_bytes=50_000)  # several blocks
    ref_d, ref_i = NearestNeighbors(n_neighbors=7).fit(x).kneighbors()
    np.testing.assert_allclose(dist, ref_d, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(idx, ref_i)


def test_trustworthiness_equals_sklearn_direct(digits):
    x, _ = digits
    y2 = PCA(2).fit_transform(x[:400])
    got, points, k = map_trustworthiness(torch.from_numpy(x[:400]).float(), y2, n_neighbors=10)
    assert (points, k) == (400, 10)
    assert got == pytest.approx(trustworthiness(x[:400], y2, n_neighbors=10), abs=1e-3)
    sub, points, _ = map_trustworthiness(torch.from_numpy(x).float(), PCA(2).fit_transform(x), max_points=300)
    assert points == 300 and 0.5 < sub <= 1.0


# ----------------------------------------------------------------------------------------------- t-SNE
def test_tsne_is_trustworthy_on_digits(digits):
    x, y = digits
    e = embed_features(x[:600], "tsne", labels=y[:600], seed=0)
    assert e.coords.shape == (600, 2) and np.isfinite(e.coords).all()
    assert e.trustworthiness >= 0.95
    assert e.trustworthiness == pytest.approx(trustworthiness(x[:600], e.coords, n_neighbors=10), abs=2e-3)
    assert e.settings["pca_dims"] == 50 and e.settings["initialization"] == "pca"
    assert e.settings["n_jobs"] == 1 and e.settings["negative_gradient_method"] == "bh"  # small map: see docs
    assert e.settings["iterations"] == e.settings["n_iter"] + e.settings["early_exaggeration_iter"]
    # same-class points are each other's map neighbours far more often than chance (10%)
    nn_idx = NearestNeighbors(n_neighbors=6).fit(e.coords).kneighbors(return_distance=False)
    assert (y[:600][nn_idx] == y[:600, None]).mean() > 0.9


def test_tsne_streams_intermediate_frames():
    x, _ = make_blobs(300, 20, centers=4, random_state=1)
    frames = []
    e = embed_features(x, "tsne", callback=frames.append, callback_every=20, n_iter=100,
                       early_exaggeration_iter=100, trustworthiness=False)
    its = [f.iteration for f in frames]
    assert its[0] == 0 and frames[0].phase == "init"
    assert its[1:] == [5] + list(range(20, 201, 20))  # an early frame after 5 iterations, then every 20
    assert {f.phase for f in frames[1:-1]} == {"exaggeration", "refine"} and frames[-1].phase == "done"
    assert frames[-1].progress == pytest.approx(1.0)
    assert all(f.coords.shape == (300, 2) and f.coords.dtype == np.float32 for f in frames)
    # frames are copies of a moving layout, and the last one is the result
    assert not np.allclose(frames[1].coords, frames[5].coords)
    np.testing.assert_allclose(frames[-1].coords, e.coords, atol=1e-5)
    assert all(f.kl_divergence > 0 for f in frames[1:])
    assert np.diff([f.elapsed for f in frames]).min() >= 0


def test_tsne_cancel_returns_partial_layout():
    x, _ = make_blobs(300, 20, centers=4, random_state=2)
    stop = threading.Event()
    frames = []

    def on_frame(frame):
        frames.append(frame)
        if frame.iteration >= 40:
            stop.set()

    e = embed_features(x, "tsne", callback=on_frame, callback_every=20, cancel=stop)
    assert e.cancelled and e.trustworthiness is None
    assert e.settings["iterations"] == 40 and frames[-1].iteration == 40
    np.testing.assert_allclose(e.coords, frames[-1].coords, atol=1e-6)
    # already cancelled: the PCA start comes back at once
    early = embed_features(x, "tsne", cancel=stop)
    assert early.cancelled and early.settings["iterations"] == 0 and np.isfinite(early.coords).all()


def test_tsne_cancel_from_another_thread():
    x, _ = make_blobs(400, 10, centers=3, random_state=3)
    stop, first = threading.Event(), threading.Event()
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("e", embed_features(
        x, "tsne", cancel=stop, callback=lambda f: first.set() if f.iteration > 0 else None, callback_every=10,
        n_iter=100_000)))
    worker.start()
    assert first.wait(60)
    stop.set()
    worker.join(60)
    assert not worker.is_alive() and out["e"].cancelled and out["e"].settings["iterations"] < 100_000


# ------------------------------------------------------------------------------------------ bad input
def test_too_few_points_for_perplexity_lowers_it_with_a_warning():
    x, _ = make_blobs(13, 5, centers=2, random_state=0)
    with pytest.warns(EmbeddingWarning, match="perplexity 30 needs at least 91 points"):
        e = embed_features(x, "tsne", n_iter=50, early_exaggeration_iter=50)
    assert e.settings["perplexity"] == pytest.approx(4.0) and np.isfinite(e.coords).all()
    with pytest.raises(InputError, match="at least 4 points"):
        embed_features(x[:3], "tsne")
    with pytest.raises(InputError, match="perplexity must be positive"):
        embed_features(x, "tsne", perplexity=0)


def test_nan_features_name_the_rows():
    x = np.random.default_rng(0).standard_normal((50, 8))
    x[[7, 31], 2] = np.nan
    x[40, 0] = np.inf
    for method in ("pca", "tsne"):
        with pytest.raises(InputError, match=r"3 of 50 points .*\[7, 31, 40\]"):
            embed_features(x, method)
    with pytest.raises(InputError, match=r"\[107, 131, 140\]"):
        embed_features(x, indices=np.arange(100, 150))


def test_no_labels_means_one_class_and_other_errors():
    x, _ = make_blobs(40, 6, random_state=0)
    e = embed_features(x, "pca")
    assert not e.has_labels and set(e.labels) == {0} and len(e.classes) == 1
    with pytest.raises(InputError, match="40 points but 39 labels"):
        embed_features(x, labels=np.zeros(39))
    with pytest.raises(InputError, match="unknown embedding method 'isomap'"):
        embed_features(x, "isomap")
    with pytest.raises(InputError, match="n_components=2"):
        embed_features(x, "tsne", n_components=3)
    with pytest.raises(InputError, match="no points"):
        embed_features(np.zeros((0, 5)))


def test_constant_features_do_not_crash():
    x = np.ones((30, 12))
    e = embed_features(x, "tsne", perplexity=5, n_iter=50, early_exaggeration_iter=50)
    assert np.isfinite(e.coords).all()
    assert np.isfinite(embed_features(x, "pca").coords).all()


def test_umap_is_optional():
    x, _ = make_blobs(60, 6, random_state=0)
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(IpynetvizError, match="pip install umap-learn"):
            embed_features(x, "umap")
    else:
        e = embed_features(x, "umap", umap_kwargs={"n_neighbors": 10})
        assert e.coords.shape == (60, 2) and e.trustworthiness > 0.8


# -------------------------------------------------------------------------------- layers and pixels
@pytest.fixture(scope="module")
def cnn_data():
    x, y = load_digits(return_X_y=True)
    images = torch.from_numpy(x[:200].reshape(-1, 1, 8, 8) / 16.0).float()
    return images, y[:200]


@pytest.mark.parametrize("pool", ["avg", "max", None])
def test_layer_features_match_a_manual_forward(cnn_data, pool):
    images, _ = cnn_data
    model = small_cnn()
    insp = Inspector(model, input_size=(1, 8, 8), device="cpu")
    f = layer_features(insp, images, "4", pool=pool, batch_size=64)
    with torch.no_grad():
        acts = model[:5](images)  # conv, relu, pool, conv, relu: (200, 8, 4, 4)
    want = {"avg": acts.mean((2, 3)), "max": acts.amax((2, 3)), None: acts.flatten(1)}[pool]
    torch.testing.assert_close(f.values, want, rtol=1e-5, atol=1e-6)
    assert f.settings["feature_shape"] == (8, 4, 4) and no_hooks(model)


def test_embed_on_a_small_cnn(cnn_data):
    images, y = cnn_data
    model = small_cnn()
    insp = Inspector(model, input_size=(1, 8, 8), device="cpu")
    e = embed(insp, (images, y), "6", "pca")  # the flattened 8 x 2 x 2 code
    with torch.no_grad():
        codes = model[:7](images).numpy()
    ref = PCA(2, svd_solver="full").fit_transform(codes.astype(np.float64))
    np.testing.assert_allclose(np.abs(e.coords), np.abs(ref), atol=1e-4 * np.abs(ref).max())
    np.testing.assert_array_equal(e.labels, y)
    assert e.settings["layer"] == "6" and e.settings["device"] == str(insp.device)
    frames = []
    t = embed(insp, images, "4", "tsne", pool="avg", indices=np.arange(50, 150), callback=frames.append,
              perplexity=15, n_iter=100, early_exaggeration_iter=100)
    np.testing.assert_array_equal(t.indices, np.arange(50, 150))
    assert not t.has_labels and t.coords.shape == (100, 2) and len(frames) == 10  # 0, 5, 25, ..., 175, 200
    assert no_hooks(model)
    with pytest.raises(LayerNotFoundError):
        embed(insp, images, "conv9")


def test_huge_layer_is_pooled_with_a_message(cnn_data):
    images, y = cnn_data
    insp = Inspector(small_cnn(), input_size=(1, 8, 8), device="cpu")
    with pytest.warns(EmbeddingWarning, match=r"384 features per image \(6 x 8 x 8\), above max_features=100; "
                                              r"average-pooling space to 4 x 4 \(96 features\)"):
        f = layer_features(insp, images[:20], "1", max_features=100)
    with torch.no_grad():
        want = nn.functional.adaptive_avg_pool2d(insp.model[:2](images[:20]), 4).flatten(1)
    torch.testing.assert_close(f.values, want)
    assert f.settings["pool"] == "avg (automatic)"
    with pytest.warns(EmbeddingWarning, match="to 1 x 1"):
        assert layer_features(insp, images[:20], "1", max_features=4).values.shape == (20, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit pool never warns
        assert layer_features(insp, images[:20], "1", pool="max", max_features=4).values.shape == (20, 6)


def test_embed_pixels_matches_features_of_scaled_pixels():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (80, 6, 6, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 80)
    e = embed_pixels((imgs, labels), "pca")
    ref = PCA(2, svd_solver="full").fit_transform(imgs.transpose(0, 3, 1, 2).reshape(80, -1) / 255.0)
    np.testing.assert_allclose(np.abs(e.coords), np.abs(ref), atol=1e-4 * np.abs(ref).max())
    np.testing.assert_array_equal(e.labels, labels)
    assert e.settings["layer"] == "pixels"
    with pytest.warns(EmbeddingWarning, match="pixel space has 108 features"):
        small = embed_pixels(imgs, "pca", max_features=30)
    assert small.settings["n_features"] == 27  # 3 channels x 3 x 3


def test_teaching_model_codes_give_a_trustworthy_map():
    from ipynetviz import zoo
    try:
        insp = zoo.load("shapes-cnn", device="cpu")
    except IpynetvizError as err:  # the zoo's weights are made by `python -m ipynetviz.zoo.train`
        pytest.skip(str(err))
    images, labels = zoo.shapes(500, split="test")
    e = embed(insp, (images, labels), "flatten", "tsne", perplexity=20)
    assert e.trustworthiness >= 0.95 and e.settings["layer"] == "flatten" and e.settings["n_features"] == 128
    pixels = embed_pixels((images, labels), "tsne", perplexity=20)
    # the codes group the classes (measured 0.80 of map neighbours share the class); the pixels, shapes over
    # photo clutter, barely do (0.11; chance is 0.10)

    def same_class_neighbours(m):
        idx = NearestNeighbors(n_neighbors=6).fit(m.coords).kneighbors(return_distance=False)
        return (labels[idx] == labels[:, None]).mean()
    assert same_class_neighbours(e) > 0.6 and same_class_neighbours(pixels) < 0.3


def test_tsne_options_object_equals_keywords():
    from ipynetviz.engine.errors import SettingError
    from ipynetviz.methods.embedding import TSNEOptions
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    a = embed_features(x, "tsne", perplexity=8, n_iter=40, early_exaggeration_iter=40, trustworthiness=False)
    b = embed_features(x, "tsne", tsne=TSNEOptions(perplexity=8, n_iter=40, early_exaggeration_iter=40),
                       trustworthiness=False)
    np.testing.assert_array_equal(a.coords, b.coords)
    with pytest.raises(SettingError, match="unknown embedding option.*perplexity"):
        embed_features(x, "tsne", perplexty=8)
