"""Assertions shared by browser tests (import: ``from tests.browser.harness import ...``)."""
from __future__ import annotations

import json
import time


def assert_no_error_text(page) -> None:
    """No ipynetviz error area has text, no traceback is printed anywhere on the page, and (for a Voila page) the
    browser logged no console error and no uncaught exception (ours or the widget stack's)."""
    session = getattr(page, "session", None)
    if session is not None and hasattr(session, "console_errors"):
        logged = session.console_errors()
        assert not logged, "the browser logged errors:\n" + "\n".join(e[:1500] for e in logged)
    errors = [t for t in page.locator(".t-error").all_inner_texts() if t.strip()]
    assert not errors, f"error areas show: {errors}"
    body = page.locator("body").inner_text()
    for word in ("Traceback", "Error:", "Exception"):
        assert word not in body, f"page shows {word!r}:\n{body[:2000]}"


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
