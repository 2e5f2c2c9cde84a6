"""Our own message path: what the views send to the browser per input (fewer messages, each one needed)."""
import threading

import numpy as np
import pytest
import ipywidgets as W
from ipywidgets.widgets import widget as widget_module

from ipynetviz.render import TileLayout
from ipynetviz.widgets import base
from ipynetviz.widgets.base import ClickImage, View, guarded


@pytest.fixture
def sent(monkeypatch):
    log = []
    original = widget_module.Widget._send

    def record(self, msg, buffers=None):
        log.append((self, sorted(msg.get("state", {}))))
        return original(self, msg, buffers)
    monkeypatch.setattr(widget_module.Widget, "_send", record)
    return log


def test_a_picture_is_one_message(sent):
    img = ClickImage()
    sent.clear()
    img.set_image(np.zeros((4, 6, 3), np.uint8))
    messages = [keys for w, keys in sent if w is img]
    assert len(messages) == 1 and {"src", "version"} <= set(messages[0])


def test_a_click_is_not_echoed_back():
    assert ClickImage().trait_metadata("click", "echo_update") is False


def test_quick_work_sends_no_status_and_slow_work_says_busy_then_clears(sent):
    view = View()
    view.BUSY_AFTER = 60  # "quick" on any machine, however loaded
    sent.clear()
    view.submit(lambda ticket: 42, on_result=lambda v: None)
    assert view.wait(10)
    assert not [keys for w, keys in sent if w is view.status]

    view.BUSY_AFTER = 0.05
    busy = threading.Event()
    view.status.observe(lambda c: busy.set() if "t-busy" in c["new"] else None, names="value")
    view.submit(lambda ticket: busy.wait(10), on_result=lambda v: None, busy="thinking")  # done once shown
    assert view.wait(10) and busy.is_set()
    assert [keys for w, keys in sent if w is view.status] == [["value"], ["value"]]
    assert view.status.value == ""


def test_a_page_that_loads_while_work_finishes_gets_the_state_again(sent):
    """Voila and reloaded pages take a snapshot of every widget's state and then create the models one by one;
    a change sent in between was dropped for good (the embedding map's first PCA never showed). Once the page says
    every part exists, the kernel re-sends the whole view: here a dashboard, its nested views included."""
    import torch

    from ipynetviz.engine import Inspector
    from ipynetviz.widgets.base import FrontendSync, widget_tree
    from ipynetviz.widgets.dashboard import Dashboard
    from tests.conftest import small_cnn

    insp = Inspector(small_cnn(seed=0), input_size=(3, 32, 32), device="cpu")
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    dash = Dashboard(insp, images, synchronous=True)
    dash._repr_mimebundle_()
    tree = widget_tree(dash)
    syncs = [w for w in tree if isinstance(w, FrontendSync)]
    assert len(syncs) == 5  # the dashboard's and one per view
    inner = [s for s in syncs if s is not dash.frontend_sync]
    assert all(s.ids == [] for s in inner)  # quiet: the outer one covers them
    covered = set(dash.frontend_sync.ids)
    assert {dash.browser.model_id, dash.picker.status.model_id, dash.occlusion.error.model_id} <= covered
    assert dash.frontend_sync.model_id not in covered
    assert len(covered) == len(tree) - 1

    sent.clear()
    dash.frontend_sync._handle_custom_msg({"event": "ready"}, [])
    again = {id(w) for w, _ in sent}
    assert again == {id(w) for w in tree if w is not dash.frontend_sync}
    assert dash.frontend_sync.resyncs == 1
    sent.clear()
    dash.frontend_sync._handle_custom_msg({"event": "something else"}, [])
    assert not sent


def test_a_state_probe_reads_as_before():
    from ipynetviz.widgets.base import StateProbe
    view = View()
    view.add_traits(n=__import__("traitlets").Int(3))
    probe = StateProbe(view, ["n"])
    assert '{&quot;n&quot;: 3}' in probe.value
    view.n = 4
    assert '{&quot;n&quot;: 4}' in probe.value


# ------------------------------------------------------------------ a click: pictures first
@pytest.fixture
def linked_views():
    import ipynetviz as nv
    insp = nv.zoo.load("shapes-cnn", seed=0)
    images, _ = nv.zoo.shapes(8, split="test")
    sel = nv.Selection(layer="conv1")
    views = (nv.FilterGrid(insp, layer="conv1", selection=sel), nv.ActivationBrowser(insp, images, selection=sel),
             nv.NeuronPicker(insp, images, selection=sel))  # background workers, as in a notebook
    for v in views:
        assert v.wait(60)
    yield views
    for v in views:
        v.close()


@pytest.mark.parametrize("thread", ["main", "subshell"])
def test_a_click_sends_every_views_picture_before_captions_colour_bars_and_outlines(sent, linked_views, thread,
                                                                                     monkeypatch):
    """A filter tile moves three views; each picture went out behind a dozen captions, colour bars and outlines.
    Now the pictures come first, the guided backprop computed in the background among them (the click waits for
    it, here without a time limit so that no machine is too slow), and every widget sends once. JupyterLab hands
    widget messages to a kernel subshell, a thread of its own: the same holds there."""
    monkeypatch.setattr(base, "SETTLE_S", 600.0)
    grid, browser, picker = linked_views
    sent.clear()
    if thread == "main":
        grid.mosaic.click_tile(7)  # the comm message a click in the page sends
    else:
        t = threading.Thread(target=grid.mosaic.click_tile, args=(7,))
        t.start()
        t.join(60)
    pictures = [w for w, keys in sent if "src" in keys]
    assert pictures == [browser.large, browser.patch_view, picker.map_view, picker.result_view]
    first_other = next(i for i, (w, keys) in enumerate(sent) if "src" not in keys)
    assert first_other == len(pictures)  # nothing else before the last picture
    widgets = [id(w) for w, _ in sent]
    assert len(widgets) == len(set(widgets)), "a widget sent twice in one click"
    assert {grid.colorbar, grid.mosaic, grid.info, browser.maps, browser.large_bar, browser.info,
            picker.maps, picker.map_bar, picker.result_bar, picker.info} <= {w for w, _ in sent}
    # the state is what the click means, and nothing stays held
    assert (grid.channel, browser.channel, picker.channel, picker.shown["channel"]) == (7, 7, 7, 7)
    assert grid.mosaic.selected == 7 and picker.maps.selected == 7
    assert not any(p._holding_sync for v in linked_views for p in v.held_parts())


class _SlowView(View):
    """One picture and a caption; a click writes the caption and starts work that waits for ``go``."""
    PICTURES_FIRST = True

    def __init__(self, fail=False):
        super().__init__()
        self.go = threading.Event()
        self.pic = ClickImage()
        self.pic.set_image(np.zeros((4, 4, 3), np.uint8), TileLayout(n=1, ncols=1, tile_h=4, tile_w=4, pad=0))
        self.info = W.HTML("")
        self.body.children = [self.pic, self.info]
        self.fail = fail
        self.pic.observe(self._on_click, names="click")

    @guarded
    def _on_click(self, change):
        self.info.value = f"click {change['new']['n']}"
        if self.fail:
            raise ValueError("no such unit; pick one of 0-3")
        self.submit(lambda ticket: self.go.wait(60), on_result=lambda _: self.pic.set_image(
            np.full((4, 4, 3), 255, np.uint8)))


def test_work_slower_than_the_settle_time_is_not_waited_for_and_arrives_as_before(sent, monkeypatch):
    monkeypatch.setattr(base, "SETTLE_S", 0.01)
    view = _SlowView()
    sent.clear()
    view.pic.click_tile(0)  # returns although the work is still waiting
    assert [w for w, _ in sent] == [view.info] and not view.go.is_set()
    assert not view.pic._holding_sync and not view.info._holding_sync
    view.go.set()
    assert view.wait(60)
    assert [w for w, _ in sent] == [view.info, view.pic]  # the picture, sent on its own when ready
    view.close()


def test_an_error_in_a_click_still_sends_everything_held(sent):
    view = _SlowView(fail=True)
    sent.clear()
    view.pic.click_tile(0)
    assert "no such unit" in view.error.message
    assert {view.info, view.error} == {w for w, _ in sent}
    assert not view.pic._holding_sync and not view.info._holding_sync and not view.error._holding_sync
    view.close()


def test_views_that_write_from_threads_of_their_own_stay_out():
    assert View.PICTURES_FIRST is False
    import ipynetviz.widgets as widgets
    for name in ("TrainingLab", "CompressionLab", "DynamicsMatrix", "TransferPlot", "ScanView", "ImageOptimizer"):
        assert getattr(widgets, name).PICTURES_FIRST is False, name
    for name in ("FilterGrid", "ActivationBrowser", "NeuronPicker", "OcclusionExplorer", "PatchGallery"):
        assert getattr(widgets, name).PICTURES_FIRST is True, name


def test_an_occlusion_slider_move_sends_the_final_map_first(sent, monkeypatch):
    """The window slider is an input part too: its move sends the heat map (a coarse one first when the work is
    progressive: at most two pictures) right after the slider's echo, then the caption, the colour bar, and the
    progress bar once (it went 0 -> done inside the move)."""
    import ipynetviz as nv
    monkeypatch.setattr(base, "SETTLE_S", 600.0)
    insp = nv.zoo.load("shapes-cnn", seed=0)
    images, _ = nv.zoo.shapes(4, split="test")
    occ = nv.OcclusionExplorer(insp, images, window=16, stride=8)
    assert occ.wait(60)
    sent.clear()
    occ.window_slider._handle_msg({"content": {"data": {"method": "update", "state": {"value": 12},
                                                        "buffer_paths": []}}, "buffers": []})
    after_echo = [w for w, keys in sent if w is not occ.window_slider]
    pictures = len(after_echo) - len([w for w in after_echo if w is not occ.heatmap])
    assert 1 <= pictures <= 2 and after_echo[:pictures] == [occ.heatmap] * pictures
    assert sorted(map(id, after_echo[pictures:])) == sorted(map(id, [occ.info, occ.colorbar, occ.progress]))
    assert occ.shown["window"] == 12 and occ.shown["complete"] and occ.progress.value == occ.progress.max
    occ.close()
