"""The tour notebook renders in Voila, in a real Chromium, without error text."""
import pytest

from tests.browser.conftest import REPO
from tests.browser.harness import assert_no_error_text

pytestmark = pytest.mark.browser


def test_tour_renders_without_errors(voila):
    page = voila(REPO / "notebooks" / "tour.ipynb", wait_for="img", timeout=240)
    page.wait_for_selector("text=conv1", timeout=60_000)
    body = page.locator("body").inner_text()
    assert "Inspector(Sequential" in body and "predicted" in body
    assert page.locator("img").count() >= 3  # the image strip and two activation mosaics
    page.session.screenshot("tour")
    assert_no_error_text(page)
