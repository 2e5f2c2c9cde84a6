"""Assertions shared by browser tests (import: ``from tests.browser.harness import ...``)."""
from __future__ import annotations

import json
import time


# visible elements of each outermost ipynetviz view reaching past the view's right edge, or past the window
OVERFLOW = """(width) => {
  const out = [];
  const views = Array.from(document.querySelectorAll('.ipynetviz-view, .t-dashboard'))
    .filter(v => !v.parentElement.closest('.ipynetviz-view, .t-dashboard'));
  for (const v of views) {
    const box = v.getBoundingClientRect();
    if (box.width === 0) continue;
    if (box.right > width + 1) out.push(`view ${v.className.split(' ').pop()}: right edge ${Math.round(box.right)}`);
    for (const e of v.querySelectorAll('*')) {
      if (e.offsetParent === null || e.closest('.bqplot .svg-figure, .tooltip')) continue;
      const r = e.getBoundingClientRect();
      if (r.width > 0 && r.height > 0 && r.right > Math.min(box.right, width) + 1) {
        const name = typeof e.className === 'string' && e.className ? e.className : e.tagName;
        out.push(`${name.slice(0, 80)}: right edge ${Math.round(r.right)} past ${Math.round(Math.min(box.right, width))}`);
        if (out.length > 8) return out;
      }
    }
  }
  return out;
}"""


def assert_fits(page, width: int = 1280) -> None:
    """At a ``width``-pixel window (a projector), no part of any view sticks out of it or past the window."""
    size = page.viewport_size
    page.set_viewport_size({"width": width, "height": size["height"]})
    try:
        # Voila's page lays out its panels in JavaScript on the resize event: let that run (two frames)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        overflow = page.evaluate(OVERFLOW, width)
    finally:
        page.set_viewport_size(size)
    assert not overflow, f"at {width} px, parts stick out:\n" + "\n".join(overflow)


def assert_no_error_text(page) -> None:
    """No ipynetviz error area has text, no traceback is printed anywhere on the page, (for a Voila page) the
    browser logged no console error and no uncaught exception (ours or the widget stack's), and every view fits a
    1280-pixel window (:func:`assert_fits`)."""
    session = getattr(page, "session", None)
    if session is not None and hasattr(session, "console_errors"):
        logged = session.console_errors()
        assert not logged, "the browser logged errors:\n" + "\n".join(e[:1500] for e in logged)
    errors = [t for t in page.locator(".t-error").all_inner_texts() if t.strip()]
    assert not errors, f"error areas show: {errors}"
    body = page.locator("body").inner_text()
    for word in ("Traceback", "Error:", "Exception"):
        assert word not in body, f"page shows {word!r}:\n{body[:2000]}"
    if session is not None and hasattr(session, "console_errors"):
        assert_fits(page)


def read_state(page, css: str = ".t-state") -> dict:
    """The JSON shown by a :class:`ipynetviz.widgets.base.StateProbe`."""
    return json.loads(page.locator(css).first.inner_text())


def wait_state(page, predicate, css: str = ".t-state", timeout: float = 60.0) -> dict:
    """Poll a StateProbe until ``predicate(state)`` holds; returns the state."""
    deadline = time.time() + timeout
    state = None
    while time.time() < deadline:
        try:
            state = read_state(page, css)
            if predicate(state):
                return state
        except Exception:
            pass
        page.wait_for_timeout(100)
    raise AssertionError(f"state never satisfied the condition; last: {state}")
