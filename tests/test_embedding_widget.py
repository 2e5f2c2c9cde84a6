"""EmbeddingScatter on the kernel side: the points drawn, clicks, neighbours, layer switches, live t-SNE, errors."""
import bqplot as bq
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from ipynetviz.engine import Inspector, Selection
from ipynetviz.methods.embedding import embed
from ipynetviz.methods.units import nearest_neighbours
from ipynetviz.render import resize, to_hwc_uint8, to_png
from ipynetviz.widgets import embedding_scatter as es
from ipynetviz.widgets.embedding_scatter import EmbeddingScatter
from tests.conftest import small_cnn

torch.set_num_threads(2)
QUICK_TSNE = {"n_iter": 40, "early_exaggeration_iter": 40, "trustworthiness": False}


@pytest.fixture(scope="module")
def insp():
    return Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device="cpu",
                     class_names=["circle", "square", "star", "ring", "cross"])


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (90, 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, np.arange(90) % 5


def make(insp, data, **kw):
    kw.setdefault("synchronous", True)
    kw.setdefault("tsne_options", QUICK_TSNE)
    return EmbeddingScatter(insp, data, **kw)


def pooled(insp, images, layer):
    return insp.activations(images, layers=[layer])[layer].mean(dim=(2, 3)).numpy()


def test_points_are_the_embedding_of_the_layer(insp, data):
    w = make(insp, data, layer="relu3")
    assert w.error.message == "" and w.n_points == 90 and w.layer == "relu3"
    assert isinstance(w.scatter, bq.Scatter)  # 90 points: SVG dots
    ref = embed(insp, data, "relu3", "pca", pool="avg")
    np.testing.assert_allclose(w.scatter.x, ref.coords[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.scatter.y, ref.coords[:, 1], rtol=1e-5, atol=1e-5)
    # independent: scikit-learn's PCA of the spatially averaged codes, up to each axis' sign
    sk = PCA(2, svd_solver="full").fit_transform(pooled(insp, data[0], "relu3"))
    for a in range(2):
        assert abs(np.corrcoef(sk[:, a], ref.coords[:, a])[0, 1]) > 0.999
    # one colour per class, in the order of the points; the legend names the classes
    assert w.colours[:5] == es.PALETTE[:5] and w.colours[5] == es.PALETTE[0]
    assert "square (18)" in w.legend.value and "trustworthiness" in w.summary.value
    ratio = ref.explained_variance_ratio
    assert w.x_axis.label == f"PC1 ({100 * ratio[0]:.1f}% of the variance)" and w.y_axis.label.startswith("PC2 (")
    # round tick values, at least two, inside the drawn extent (not bqplot's odd ones such as 0.0061)
    for axis, scale in ((w.x_axis, w.x_scale), (w.y_axis, w.y_scale)):
        ticks = np.asarray(axis.tick_values)
        assert len(ticks) >= 2 and scale.min < ticks.min() and ticks.max() < scale.max
        step = np.diff(ticks)[0]
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert np.allclose(np.diff(ticks), step) and min(abs(mantissa - m) for m in (1, 2, 2.5, 5)) < 1e-6


def test_click_selects_the_image_thumbnail_marker_and_neighbours(insp, data):
    sel = Selection()
    w = make(insp, data, layer="relu3", selection=sel, k=4)
    w.click_point(17)
    w.wait()
    assert w.image_index == 17 and sel.image_index == 17
    assert (w.marker.x[0], w.marker.y[0]) == pytest.approx(tuple(w.embedding.coords[17]))
    expected = resize(to_hwc_uint8(data[0][17].numpy()), (96, 96), smooth=True)
    np.testing.assert_array_equal(w.thumb.image, expected)
    assert "image <b>17</b>" in w.info.value and "star" in w.info.value  # 17 % 5 == 2
    ref = nearest_neighbours(insp, data[0], [17], "relu3", k=4)
    np.testing.assert_array_equal(w.neighbours.feature_indices, ref.feature_indices)
    np.testing.assert_array_equal(w.neighbours.pixel_indices, ref.pixel_indices)
    # brute force in pixel space: the pixel neighbours' pictures are those drawn
    x = data[0].reshape(90, -1).double()
    d = ((x - x[17]) ** 2).sum(1)
    d[17] = float("inf")
    assert set(torch.argsort(d)[:4].tolist()) == set(w.neighbours.pixel_indices[0].tolist())
    assert w.pixel_nn.tiles["n"] == 4 and w.feature_nn.tiles["n"] == 4
    # the shared selection moves the widget, and a click on a neighbour selects it
    sel.image_index = 40
    w.wait()
    assert w.image_index == 40 and (w.marker.x[0], w.marker.y[0]) == pytest.approx(tuple(w.embedding.coords[40]))
    w.pixel_nn.simulate_click(60, 10)  # tiles of 48 px + 2 px pad: x = 60 is the second tile
    w.wait()
    assert w.image_index == int(ref_pixel_second(insp, data, 40))
    assert w.error.message == ""


def ref_pixel_second(insp, data, index):
    return nearest_neighbours(insp, data[0], [index], "relu3", k=4).pixel_indices[0, 1]


def test_hover_shows_the_thumbnail(insp, data):
    w = make(insp, data, layer="relu3")
    w._on_hover(w.scatter, {"event": "hover", "point": {"index": 8, "x": 0.0, "y": 0.0}})
    assert w.hover_image.value == to_png(resize(to_hwc_uint8(data[0][8].numpy()), (64, 64), smooth=True))


def test_subsample_maps_points_to_dataset_indices(insp, data):
    w = make(insp, data, layer="relu3", max_points=30)
    assert w.n_points == 30 and w.indices[0] == 0 and w.indices[-1] == 89
    w.click_point(1)
    w.wait()
    assert w.image_index == int(w.indices[1]) == 3
    assert list(w.embedding.indices) == list(w.indices)


def test_layer_switch_re_embeds_and_caches(insp, data):
    w = make(insp, data, layer="relu3")
    before = np.array(w.scatter.x)
    w.click_point(5)
    w.layer = "pool2"
    w.wait()
    assert w.neighbours.layer == "pool2" and w.image_index == 5  # the neighbours follow the new feature space
    assert w.embedding.settings["layer"] == "pool2" and w.selection.layer == "pool2"
    assert not np.allclose(before, w.scatter.x)
    ref = embed(insp, data, "pool2", "pca", pool="avg")
    np.testing.assert_allclose(w.scatter.x, ref.coords[:, 0], rtol=1e-5, atol=1e-5)
    first = w._cache[("relu3", "pca")]
    w.layer = "relu3"
    assert w.embedding is first  # cached: no second computation
    w.layer = "pixels"
    assert w.embedding.settings["layer"] == "pixels" and w.feature_layer == "relu3"
    w.click_point(3)
    w.wait()
    assert w.neighbours.layer == "relu3"  # pixel map: neighbours still compare a layer with pixels


def test_tsne_streams_frames_and_cancel_stops_it(insp, data):
    w = make(insp, data, layer="relu3", callback_every=10)
    w.image_index = 17
    seen = []

    def at_frame(change):  # what the browser shows while t-SNE runs
        x, y = np.asarray(w.scatter.x), np.asarray(w.scatter.y)
        seen.append(dict(
            fits=(w.x_scale.min, w.x_scale.max, w.y_scale.min, w.y_scale.max) ==
            pytest.approx((x.min(), x.max(), y.min(), y.max()), rel=1e-6, abs=1e-6),
            ring=(w.marker.x[0], w.marker.y[0]) == pytest.approx((x[17], y[17])),
            summary=w.summary.value, label=w.x_axis.label))
    w.observe(at_frame, names="frames")
    w.method = "tsne"
    assert len(seen) >= 8 and all(f["fits"] and f["ring"] for f in seen)  # frames fill the plot, ring follows
    assert all("t-SNE of <b>relu3</b>, running: iteration" in f["summary"] for f in seen)
    assert all("no meaning" in f["label"] for f in seen) and "no meaning" in w.x_axis.label
    assert w.x_axis.tick_style == {"visibility": "hidden"} and w.y_axis.grid_lines == "none"
    assert "t-SNE of <b>relu3</b>" in w.summary.value and "trustworthiness" in w.summary.value
    assert w.error.message == "" and w.embedding.method == "tsne" and not w.embedding.cancelled
    assert w.frames >= 8  # the start plus one every 10 of 80 iterations
    assert w.progress.value == w.progress.max == 80
    np.testing.assert_allclose(w.scatter.x, w.embedding.coords[:, 0])

    w2 = make(insp, data, layer="pool2", callback_every=5)
    w2.observe(lambda ch: w2.cancel() if ch["new"] == 3 else None, names="frames")
    w2.method = "tsne"
    assert w2.embedding.cancelled and w2.frames == 3
    assert w2.embedding.settings["iterations"] < 80 and w2.progress.value < w2.progress.max
    assert "cancelled" in w2.summary.value
    assert ("pool2", "tsne") not in w2._cache  # a cancelled map is not reused


def test_brush_selection_shows_a_gallery(insp, data):
    w = make(insp, data, layer="relu3")
    c = w.embedding.coords
    w.select_box(c[:, 0].min(), np.median(c[:, 0]), c[:, 1].min(), c[:, 1].max())
    expect = [i for i in range(90) if c[i, 0] <= np.median(c[:, 0])]
    assert w.selected == expect
    assert w.gallery.tiles["n"] == min(len(expect), 64)
    assert f"{len(expect)} images selected" in w.gallery_info.value
    w.gallery.simulate_click(10, 10)
    assert w.image_index == expect[0]
    w.tool_picker.value = "lasso"
    assert w.figure.interaction is w.lasso


def test_no_labels_draw_one_colour(insp, data):
    w = make(insp, data[0], layer="relu3")
    assert w.embedding.has_labels is False and w.scatter.color is None
    assert set(w.colours) == {es.SINGLE_COLOUR} and len(w.colours) == 90
    assert "no labels" in w.legend.value
    w.click_point(2)
    w.wait()
    assert "class" not in w.info.value and w.error.message == ""


def test_labels_argument_overrides_and_is_checked(insp, data):
    w = make(insp, data[0], labels=np.arange(90) % 2, layer="relu3")
    assert set(w.colours) == set(es.PALETTE[:2])
    with pytest.raises(ValueError, match="one label per image"):
        make(insp, data[0], labels=[0, 1], layer="relu3")


def test_errors_and_notes_are_shown_not_raised(insp, data):
    from ipynetviz.engine.errors import LayerNotFoundError
    with pytest.raises(LayerNotFoundError):
        make(insp, data, layer="relu_3")
    bad = torch.rand(20, 3, 32, 32)
    bad[7, 0, 3, 3] = float("nan")
    w = make(insp, bad, layer="relu3")
    assert "NaN" in w.error.message or "nan" in w.error.message.lower()
    assert w.embedding is None and w.n_points == 0
    few = make(insp, (data[0][:12], data[1][:12]), layer="relu3")
    few.method = "tsne"  # 12 points cannot support perplexity 30: lowered, with a note, no crash
    assert few.error.message == "" and few.embedding.settings["perplexity"] < 30
    assert "perplexity" in few.notes.value
