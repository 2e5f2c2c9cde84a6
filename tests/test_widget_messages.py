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
