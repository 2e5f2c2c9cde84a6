"""The engine and methods import without any widget library (arrows point down only)."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["ipynetviz", "ipynetviz.engine", "ipynetviz.methods", "ipynetviz.render",
                                    "ipynetviz.zoo"])
def test_no_widget_library_imported(module):
    code = (f"import sys, {module}\n"
            "bad = [m for m in ('ipywidgets', 'bqplot', 'anywidget') if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {module} pulled in {out.stdout.strip()}"


def test_the_engine_imports_no_method():
    """Target arithmetic builds method-level Objectives through a loader the package registers, not an import."""
    code = ("import sys, ipynetviz.engine\n"
            "print(','.join(m for m in sys.modules if m.startswith(('ipynetviz.methods', 'ipynetviz.widgets'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing the engine pulled in {out.stdout.strip()}"
