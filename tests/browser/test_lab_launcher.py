"""The prebuilt JupyterLab extension: launcher tiles, palette and Help menu entries copy a bundled notebook into
the current folder and open it; an existing file is never overwritten; a failed copy says why."""
import pytest

from tests.browser.jupyter_pages import JupyterPage
from tests.jupyter_process import REPO

pytestmark = pytest.mark.browser
TOUR = (REPO / "notebooks" / "tour.ipynb").read_bytes()


@pytest.fixture
def lab(chromium, tmp_path):
    root = tmp_path / "root"
    (root / "class").mkdir(parents=True)
    (root / "gone").mkdir()
    lab = JupyterPage(chromium, root, tmp_path, "lab", "lab-launcher")
    yield lab
    lab.close()


def _tile(page, title):
    return page.locator(".jp-Launcher:visible .jp-Launcher-section:has(.jp-Launcher-sectionTitle:text-is('ipynetviz'))"
                        " .jp-LauncherCard", has_text=title)


def _open_launcher(page):
    page.evaluate("window.jupyterapp.commands.execute('launcher:create')")
    page.wait_for_selector(".jp-Launcher:visible .jp-Launcher-sectionTitle:text-is('ipynetviz')")


def _wait_tab(page, name):
    page.wait_for_selector(f".lm-DockPanel-tabBar .lm-TabBar-tabLabel:text-is('{name}')", timeout=60_000)


def test_a_launcher_tile_copies_the_tour_into_the_current_folder_and_opens_it(lab):
    page = lab.goto("/lab/tree/class", ".jp-LauncherCard")
    titles = page.locator(".jp-Launcher-section:has(.jp-Launcher-sectionTitle:text-is('ipynetviz')) "
                          ".jp-LauncherCard-label").all_inner_texts()
    assert titles[0] == "A tour of ipynetviz" and len(titles) == len(list((REPO / "notebooks").glob("*.ipynb")))
    lab.screenshot("tiles")
    _tile(page, "A tour of ipynetviz").click()
    _wait_tab(page, "tour.ipynb")
    page.wait_for_selector(".jp-Launcher", state="detached")  # the launcher gave its place to the notebook
    copied = lab.server.root / "class" / "tour.ipynb"
    assert copied.read_bytes() == TOUR

    # the same tile again: the existing copy is kept, and the dialog offers a new copy beside it
    copied.write_text(copied.read_text().replace("A tour of ipynetviz", "A tour of ipynetviz (my notes)"))
    _open_launcher(page)
    _tile(page, "A tour of ipynetviz").click()
    dialog = page.wait_for_selector(".jp-Dialog")
    assert "tour.ipynb already exists in class; it was not overwritten" in dialog.inner_text()
    lab.screenshot("exists-dialog")
    page.locator(".jp-Dialog button", has_text="New copy").click()
    _wait_tab(page, "tour-1.ipynb")
    assert "(my notes)" in copied.read_text()
    assert (lab.server.root / "class" / "tour-1.ipynb").read_bytes() == TOUR
    assert lab.our_console_errors() == []


def test_palette_and_help_menu_entries_and_a_clear_message_when_the_copy_fails(lab):
    page = lab.goto("/lab/tree/gone", ".jp-LauncherCard")
    page.wait_for_selector(".jp-Launcher-sectionTitle:text-is('ipynetviz')")
    page.locator(".lm-MenuBar-itemLabel", has_text="Help").click()
    help_items = page.locator(".lm-Menu-itemLabel").all_inner_texts()
    assert "ipynetviz: A tour of ipynetviz" in help_items
    page.keyboard.press("Escape")
    page.evaluate("window.jupyterapp.commands.execute('apputils:activate-command-palette')")
    page.locator(".lm-CommandPalette-input").fill("ipynetviz")
    palette = page.locator(".lm-CommandPalette-itemLabel").all_inner_texts()
    assert "A tour of ipynetviz" in palette and len(palette) >= 2
    page.keyboard.press("Escape")

    (lab.server.root / "gone").rmdir()  # the folder the file browser shows disappears before the click
    page.locator(".lm-MenuBar-itemLabel", has_text="Help").click()
    page.locator(".lm-Menu-itemLabel", has_text="ipynetviz: A tour of ipynetviz").click()
    dialog = page.wait_for_selector(".jp-Dialog")
    text = dialog.inner_text()
    assert "Cannot copy the notebook" in text and "folder 'gone' does not exist" in text
    lab.screenshot("error-dialog")
    assert lab.our_console_errors() == []


def test_notebook7_help_menu_copies_the_tour_and_opens_it(chromium, tmp_path):
    root = tmp_path / "root"
    (root / "class").mkdir(parents=True)
    nb7 = JupyterPage(chromium, root, tmp_path, "notebook", "notebook7-help")
    try:
        page = nb7.goto("/tree/class", ".jp-DirListing")
        page.locator(".lm-MenuBar-itemLabel", has_text="Help").click()
        item = page.locator(".lm-Menu-itemLabel", has_text="ipynetviz: A tour of ipynetviz")
        item.wait_for()
        with page.context.expect_page() as opened:  # Notebook 7 opens a notebook in a new browser tab
            item.click()
        tab = opened.value
        # opened (no need to load it); the copy request comes first, slow on a loaded machine
        tab.wait_for_url("**/notebooks/class/tour.ipynb*", wait_until="commit", timeout=120_000)
        assert (root / "class" / "tour.ipynb").read_bytes() == TOUR
        tab.close()
        assert nb7.our_console_errors() == []
    finally:
        nb7.close()
