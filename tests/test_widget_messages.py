"""Our own message path: what the views send to the browser per input (fewer messages, each one needed)."""
import threading

import numpy as np
import pytest
from ipywidgets.widgets import widget as widget_module

from ipynetviz.widgets.base import ClickImage, View


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
