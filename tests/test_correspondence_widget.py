"""CorrespondenceMatrix on the Python side: what it shows equals references computed here (NumPy's corrcoef on
activations captured by our own hooks, SciPy's assignment), and a click shows the clicked pair."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import traitlets
from scipy.optimize import linear_sum_assignment

import ipynetviz as nv
from ipynetviz.engine import Inspector, Selection, hooks_left
from ipynetviz.engine.errors import InputError, LayerNotFoundError
from ipynetviz.methods.units import filters, input_pictures, top_patches
from ipynetviz.render import overlay
from ipynetviz.render.heatmap import colorbar, matrix_picture, nice_ticks
from ipynetviz.widgets.correspondence_matrix import CorrespondenceMatrix
from ipynetviz.widgets.correspondence_parts import activation_layers, unit_layers
from tests.conftest import small_cnn

torch.set_num_threads(2)
N = 40


@pytest.fixture(scope="module")
def nets():
    net_a, net_b = small_cnn(seed=0), small_cnn(seed=1)
    return (Inspector(net_a, input_size=(3, 32, 32), device="cpu"),
            Inspector(net_b, input_size=(3, 32, 32), device="cpu"))


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def widget(nets, images):
    return CorrespondenceMatrix(*nets, images, synchronous=True, k=4, grid_images=20)


def reference_acts(insp, images, layer):
    """The layer's output for ``images`` (uint8 -> [0, 1], the inspector's default transform), by our own hook."""
    out = {}
    module = dict(insp.model.named_modules())[layer]

    def keep(module, inputs, output):
        out["o"] = output.detach().double()  # returns None: the forward pass goes on unchanged
    handle = module.register_forward_hook(keep)
    try:
        insp.model.eval()
        with torch.no_grad():
            insp.model(images.float() / 255)
    finally:
        handle.remove()
    return out["o"]


def flat(acts):
    return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1]).numpy()


def corr_block(a, b):
    a, b = flat(a), flat(b)
    return np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:]


def tile_pixels(view, i):
    lay = view.tiles
    r, c = divmod(i, lay["ncols"])
    y, x = lay["pad"] + r * (lay["tile_h"] + lay["pad"]), lay["pad"] + c * (lay["tile_w"] + lay["pad"])
    return view.image[y:y + lay["tile_h"], x:x + lay["tile_w"]]


def test_layers_offered(nets):
    assert activation_layers(nets[0]) == ["relu1", "relu2", "relu3"]  # relu2 follows bn2, not pool
    assert unit_layers(nets[0]) == ["conv1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2", "conv3", "relu3",
                                    "gap"]


def test_heatmap_is_the_correlation_reordered_by_the_matching(widget, nets, images):
    ref = corr_block(reference_acts(nets[0], images, "relu1"), reference_acts(nets[1], images, "relu1"))
    v = widget.shown
    assert (widget.layer_a, widget.layer_b, widget.mode, widget.scope) == ("relu1", "relu1", "bipartite", "between")
    np.testing.assert_allclose(v.matrix, ref[np.ix_(v.rows, v.cols)], atol=1e-5)
    assert sorted(v.rows) == list(range(8)) and sorted(v.cols) == list(range(8))
    assert np.array_equal(widget.heatmap.image, matrix_picture(v.matrix))  # one pixel per cell
    r, c = linear_sum_assignment(ref, maximize=True)  # the diagonal is SciPy's optimal assignment, best first
    assert {(int(a), int(b)) for a, b in zip(v.rows, v.cols)} == {(int(a), int(b)) for a, b in zip(r, c)}
    diag = np.diag(v.matrix)
    assert diag.sum() == pytest.approx(ref[r, c].sum(), abs=1e-9) and np.all(np.diff(diag) <= 1e-12)
    curve = widget.curve.lines["bipartite"].y
    np.testing.assert_allclose(curve, np.sort(ref[r, c])[::-1], atol=1e-5)
    np.testing.assert_allclose(widget.curve.lines["semi"].y, np.sort(ref.max(1))[::-1], atol=1e-5)
    assert widget.cell == (int(v.rows[0]), int(v.cols[0])) and widget.heatmap.box == [0, 0, 1, 1]
    assert widget.error.message == ""


def test_click_shows_the_pair_side_by_side(widget, nets, images):
    insp_a, insp_b = nets
    acts = {s: reference_acts(insp, images, "relu1") for s, insp in (("a", insp_a), ("b", insp_b))}
    ref = corr_block(acts["a"], acts["b"])
    v = widget.shown
    widget.click_cell(2, 5)
    ua, ub = int(v.rows[2]), int(v.cols[5])
    assert widget.cell == (ua, ub) and widget.cell_corr == pytest.approx(ref[ua, ub], abs=1e-5)
    assert widget.heatmap.box == [2, 5, 3, 6]
    assert f"relu1[{ua}]" in widget.panels["row"].title.value and f"relu1[{ub}]" in widget.panels["col"].title.value
    assert f"r = <b>{ref[ua, ub]:.3f}</b>" in widget.cell_info.value
    assert (widget.selection.layer, widget.selection.channel) == ("relu1", ua)  # net A's unit, for other views
    for key, insp, unit in (("row", insp_a, ua), ("col", insp_b, ub)):
        panel = widget.panels[key]
        f = filters(insp, "conv1")  # relu1's filter is conv1's, drawn as its RGB tile
        s = panel.filter.image.shape[0] // 5
        assert np.array_equal(panel.filter.image[::s, ::s], f.uint8()[unit])
        crops = top_patches(insp, images, "relu1", k=4).crops(unit)
        s = panel.patches.tiles["tile_h"] // crops.shape[-1]
        assert np.array_equal(tile_pixels(panel.patches, 0)[::s, ::s], crops[0].transpose(1, 2, 0))
    # the shared image: a new selection.image_index redraws both maps from that image's activations
    widget.selection.image_index = 7
    assert widget.image_index == 7
    for key, side, unit in (("row", "a", ua), ("col", "b", ub)):
        amap = acts[side][7, unit].float().numpy()
        want = overlay(input_pictures(nets[0], images, [7])[0], amap, alpha=0.6)
        assert np.array_equal(widget.panels[key].map.image, want)
        assert f"image 7: max {amap.max():.3g}" in widget.panels[key].map_info.value
    # a click on a top patch opens that patch's image
    top = top_patches(insp_a, images, "relu1", k=4)
    widget.panels["row"].patches.simulate_click(3, 3)
    assert widget.image_index == widget.selection.image_index == int(top.image_indices[top.row(ua), 0])
    assert widget.error.message == "" and hooks_left(insp_a.model) == [] and hooks_left(insp_b.model) == []


def test_semi_matching_and_within_net_scopes(widget, nets, images):
    ref_a = reference_acts(nets[0], images, "relu1")
    ref_b = reference_acts(nets[1], images, "relu1")
    ref = corr_block(ref_a, ref_b)
    widget.click_cell(1, 3)
    pair = widget.cell
    widget.mode = "semi"
    v = widget.shown
    assert widget.cell == pair  # the same units stay selected; the outline moves with them
    i, j = v.position(*pair)
    assert widget.heatmap.box == [i, j, i + 1, j + 1]
    # rows best pair first; each row's best B unit (NumPy argmax) gets the next column unless a better row
    # already took it: then the match sits left of the diagonal
    best = ref.argmax(1)
    assert np.all(np.diff(ref[v.rows, best[v.rows]]) <= 1e-12)
    placed = []
    for unit in v.rows:
        k = int(np.flatnonzero(v.cols == best[unit])[0])
        assert k == (placed.index(best[unit]) if best[unit] in placed else len(placed))
        placed += [] if best[unit] in placed else [best[unit]]
    assert len(placed) < len(v.rows)  # these random nets share favourites, so the case is exercised
    widget.scope = "within_a"
    w = widget.shown
    np.testing.assert_allclose(w.matrix, corr_block(ref_a, ref_a)[np.ix_(v.rows, v.rows)], atol=1e-5)
    np.testing.assert_allclose(np.diag(w.matrix), 1.0, atol=1e-9)
    assert widget.cell == (int(v.rows[i]), int(v.rows[j])) and widget.heatmap.box == [i, j, i + 1, j + 1]
    assert "net A" in widget.panels["col"].title.value
    widget.scope = "within_b"
    np.testing.assert_allclose(widget.shown.matrix, corr_block(ref_b, ref_b)[np.ix_(v.cols, v.cols)], atol=1e-5)
    assert "net B" in widget.panels["row"].title.value
    widget.scope, widget.mode = "between", "bipartite"
    assert widget.error.message == ""


def test_layers_of_different_sizes_are_pooled(widget, nets, images):
    widget.set_layers("relu1", "relu2")
    a = torch.nn.functional.adaptive_avg_pool2d(reference_acts(nets[0], images, "relu1"), (16, 16))
    ref = corr_block(a, reference_acts(nets[1], images, "relu2"))
    v = widget.shown
    assert v.matrix.shape == (8, 16) and widget.heatmap.image.shape[:2] == (8, 16)
    np.testing.assert_allclose(v.matrix, ref[np.ix_(v.rows, v.cols)], atol=1e-5)
    assert "average-pooled" in widget.info.value and widget.layer_b == "relu2"
    widget.set_layers("relu1", "relu1")
    assert widget.error.message == ""


def linear_cka(x, y):
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_layer_grid_and_its_click(widget, nets, images):
    g = widget.grid_result
    assert g.layers_a == g.layers_b == ("relu1", "relu2", "relu3")
    few = images[:20]
    for i, layer in enumerate(g.layers_a):  # same-size pairs: CKA of the flattened positions
        want = linear_cka(flat(reference_acts(nets[0], few, layer)), flat(reference_acts(nets[1], few, layer)))
        assert g.cka[i, i] == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(widget.grid_plot.mark.color, g.cka)
    assert widget.grid_plot.figure.layout.visibility == "visible"
    bar = widget.grid_plot.colorbar  # the grid's colour scale, named
    assert (bar.cmap, bar.lo, bar.hi) == ("viridis", 0.0, 1.0) and bar.meaning.startswith("linear CKA")
    assert bar in widget.grid_plot.box.children
    widget.grid_measure = "svcca"
    np.testing.assert_allclose(widget.grid_plot.mark.color, g.svcca)
    assert bar.meaning.startswith("mean SVCCA")
    widget.grid_plot.click(2, 1)  # row relu3 of A, column relu2 of B
    assert (widget.layer_a, widget.layer_b) == ("relu3", "relu2")
    assert (widget.result.layer_a, widget.result.layer_b) == ("relu3", "relu2")
    assert np.asarray(widget.grid_plot.mark.selected).tolist() == [[2, 1]]
    widget.set_layers("relu1", "relu1")
    widget.grid_measure = "cka"
    assert widget.error.message == ""


def test_selected_channel_elsewhere_moves_the_cell(widget):
    c = widget.result
    sel = widget.selection
    sel.layer, sel.channel = "conv1", 3  # e.g. a FilterGrid of net A: relu1's units are conv1's channels
    partner = int(c.bipartite_.pairs[c.bipartite_.pairs[:, 0] == 3, 1][0])
    assert widget.cell == (3, partner)
    sel.layer, sel.channel = "conv3", 5  # another layer: the matrix keeps its cell
    assert widget.cell == (3, partner)


def test_dead_unit_is_gray_and_undefined(nets, images):
    net = small_cnn(seed=0)
    with torch.no_grad():
        net.conv3.bias[2] = -1e4  # relu3 unit 2 never fires
    insp = Inspector(net, input_size=(3, 32, 32), device="cpu")
    w = CorrespondenceMatrix(insp, nets[1], images, layer_a="relu3", synchronous=True, k=0, grid=False)
    v = w.shown
    row = int(np.flatnonzero(v.rows == 2)[0])
    assert row >= v.n_pairs and np.isnan(v.matrix[row]).all()  # unmatched: after the matched pairs
    assert (w.heatmap.image[row] == (150, 150, 150)).all()
    w.click_cell(row, 0)
    assert w.cell == (2, int(v.cols[0])) and w.cell_corr is None
    assert "dead" in w.cell_info.value and "dead" in w.panels["row"].title.value
    # random small nets have a few dead relu3 units of their own: count them from our own hooks
    dead_a = flat(reference_acts(insp, images, "relu3")).std(0) == 0
    dead_b = flat(reference_acts(nets[1], images, "relu3")).std(0) == 0
    assert dead_a[2] and np.array_equal(w.result.correlation_.dead_a, dead_a)
    assert f"dead units: A {dead_a.sum()}, B {dead_b.sum()}" in w.info.value and w.error.message == ""


def test_128_units_stay_one_small_picture_and_clicks_are_fast():
    a, b = nv.zoo.load("shapes-cnn", seed=0), nv.zoo.load("shapes-cnn", seed=1)
    images, _ = nv.zoo.shapes(24, split="test")
    w = CorrespondenceMatrix(a, b, images, layer_a="relu3", synchronous=True, k=4, grid=False)
    assert w.heatmap.image.shape == (128, 128, 3) and w.heatmap.scale == 3.0
    times = []
    rng = np.random.default_rng(0)
    for i, j in rng.integers(0, 128, size=(15, 2)):
        t = time.perf_counter()
        w.click_cell(int(i), int(j))
        times.append(time.perf_counter() - t)
        assert w.cell == (int(w.shown.rows[i]), int(w.shown.cols[j]))
    # a click redraws a few small pictures and no model runs (measured ~30-50 ms on a loaded 2-core machine)
    assert np.median(times) < 0.3, times
    assert w.error.message == ""


def test_background_worker_latest_wins(nets, images):
    w = CorrespondenceMatrix(*nets, images, synchronous=False, k=4, grid=False)
    for i in range(5):
        w.image_index = i
    assert w.wait(120)
    want = reference_acts(nets[0], images[4:5], "relu1")[0].float().numpy()
    np.testing.assert_allclose(w.maps["a", "relu1", 4], want, atol=1e-5)
    assert w.result is not None and w.cell is not None and w.error.message == ""


def test_bad_input(nets, images):
    with pytest.raises(LayerNotFoundError, match="relu1"):
        CorrespondenceMatrix(*nets, images, layer_a="relu_1", synchronous=True, grid=False)
    with pytest.raises(InputError, match="no \\(C, H, W\\) units"):
        CorrespondenceMatrix(*nets, images, layer_a="fc", synchronous=True, grid=False)
    w = CorrespondenceMatrix(*nets, images[:8], synchronous=True, k=0, grid=False, selection=Selection())
    with pytest.raises(traitlets.TraitError, match="outside the shown matrix"):
        w.cell = (8, 0)
    with pytest.raises(traitlets.TraitError):
        w.mode = "greedy"


def test_render_heatmap_parts():
    m = np.array([[1.0, -1.0], [np.nan, 0.2]])
    pic = matrix_picture(m, nan_rgb=(1, 2, 3))
    assert pic.shape == (2, 2, 3) and tuple(pic[1, 0]) == (1, 2, 3)
    assert tuple(pic[0, 0]) == tuple(colorbar("rdbu", length=256)[0, 0])  # +1: the bar's top colour
    with pytest.raises(ValueError, match="2-D"):
        matrix_picture(np.zeros(3))
    assert nice_ticks(0, 127).tolist() == [0, 25, 50, 75, 100, 125]
    assert nice_ticks(-0.1, 1.0).tolist() == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_render_heatmap_doctests():
    import doctest

    import ipynetviz.render.heatmap as module
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0
