"""Real browser: a result a background job delivers while the page is still creating its widget models (after the
kernel sent the page its snapshot of every state) reaches the page. Before FrontendSync the change went to a model
that did not exist yet and was dropped: the embedding map stayed empty in CI ("n_points": 0 for 90 s)."""
import pytest

from tests.browser.harness import assert_no_error_text, wait_state

pytestmark = pytest.mark.browser

CELLS = [
    "import threading\n"
    "import ipywidgets as W, traitlets\n"
    "from ipywidgets.widgets.widget import Widget\n"
    "from ipynetviz.widgets.base import StateProbe, View\n"
    "snapshot = threading.Event()\n"
    "_answer = Widget._handle_control_comm_msg.__func__\n"
    "def _spy(cls, msg):  # the page asked for (and now has) the snapshot of all states\n"
    "    _answer(cls, msg)\n"
    "    if msg['content']['data'].get('method') == 'request_states':\n"
    "        snapshot.set()\n"
    "Widget._handle_control_comm_msg = classmethod(_spy)\n"
    "class Late(View):\n"
    "    done = traitlets.Int(0)\n"
    "v = Late()\n"
    "v.text = W.HTML('waiting')\n"
    "v.text.add_class('t-late')\n"
    "v.body.children = [v.text]\n"
    "def finish(value):\n"
    "    v.text.value = 'done'\n"
    "    v.done = value\n"
    "v.submit(lambda ticket: snapshot.wait(120) and 1, on_result=finish)\n"
    "display(v, StateProbe(v, ['done']), StateProbe(v.frontend_sync, ['resyncs'], css_class='t-sync'))",
]


def test_a_result_delivered_while_the_page_loads_is_shown(voila):
    page = voila(CELLS, wait_for=".t-state")
    page.wait_for_function("(document.querySelector('.t-late') || {}).innerText === 'done'", timeout=60000)
    assert wait_state(page, lambda s: s["done"] == 1)["done"] == 1
    assert wait_state(page, lambda s: s["resyncs"] >= 1, css=".t-sync")["resyncs"] >= 1
    assert_no_error_text(page)
