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


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_star_import_and_dir_show_the_public_surface():
    got = _fresh("import ipynetviz\nns = {}\nexec('from ipynetviz import *', ns)\n"
                 "print(sorted(k for k in ns if not k.startswith('__')))\nprint(dir(ipynetviz))")
    star, listed = (eval(line) for line in got.splitlines())
    for name in ("Inspector", "Class", "Unit", "zoo", "methods", "widgets", "NeuronPicker", "FilterGrid"):
        assert name in star and name in listed
    for helper in ("annotations", "importlib", "engine", "_targets"):
        assert helper not in listed


# each public verb called on a cheap path in a fresh interpreter: methods never load widget libraries, and the
# engine never loads methods or widgets, not even lazily at call time
CALLS = {
    "ipynetviz.engine": "insp.activations(x, ['0']); insp.forward(x); insp.resolve_target(None, x)",
    "ipynetviz.methods.attribution": "M.saliency(insp, x, 0); M.occlusion(insp, x, 0, window=4, stride=4)",
    "ipynetviz.methods.units": "M.filters(insp, '0'); M.top_patches(insp, x, '0', k=1); "
                               "M.nearest_neighbours(insp, x, 0, '0', k=1)",
    "ipynetviz.methods.embedding": "M.embed(insp, x, '0', 'pca')",
    "ipynetviz.methods.correspondence": "M.compare(insp, insp, x, '0')",
    "ipynetviz.methods.optimize": "M.visualize(insp, 0, steps=1)",
}


@pytest.mark.parametrize("module", CALLS)
def test_calls_load_nothing_above_their_layer(module):
    above = ("ipywidgets", "bqplot", "anywidget", "ipynetviz.widgets")
    if module == "ipynetviz.engine":
        above += ("ipynetviz.methods",)
    code = ("import sys, torch\n"
            f"import {module} as M\n"
            "from ipynetviz.engine import Inspector\n"
            "model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),\n"
            "                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))\n"
            "insp = Inspector(model, input_size=(3, 8, 8), device='cpu')\n"
            "x = torch.rand(6, 3, 8, 8)\n"
            f"{CALLS[module]}\n"
            f"print(','.join(m for m in sys.modules if m.startswith({above!r})))")
    assert _fresh(code) == "", f"calling {module} loaded modules above it"


def test_a_model_that_fails_at_every_size_says_so():
    code = ("import torch\nfrom ipynetviz.engine import Inspector\n"
            "class Odd(torch.nn.Module):\n"
            "    def __init__(self):\n        super().__init__(); self.fc = torch.nn.Linear(28 * 28, 10)\n"
            "    def forward(self, x):\n        return self.fc(x.flatten(1))\n"
            "try:\n    Inspector(Odd(), device='cpu').layers\n"
            "except Exception as e:\n    print(type(e).__name__, '|', e)\n")
    got = _fresh(code)
    assert got.startswith("ModelError |") and "(3, 224, 224)" in got and "(3, 32, 32)" in got
    assert "input_size=" in got
