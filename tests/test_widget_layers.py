"""Widget plumbing lives in the base: no view borrows from another view's module.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a function counts too.
A concrete view module (one that ``ipynetviz.widgets`` lists) may import ``widgets.base``, its own helper
modules (``correspondence_parts`` for ``correspondence_matrix``: same first word) and the layers below
(engine, methods, render). Composing another whole view (TrainingLab shows a FilterGrid) is allowed by its
public class name only, so no helper can travel that way.
"""
import ast
import pathlib

import pytest

import ipynetviz.widgets as widgets

WIDGETS = pathlib.Path(widgets.__file__).parent
VIEWS = set(widgets._WIDGETS.values())
PUBLIC_VIEWS = set(widgets._WIDGETS)
BELOW = {"engine", "methods", "render"}
MODULES = sorted(p.stem for p in WIDGETS.glob("*.py") if p.stem != "__init__")


def _family(module: str) -> str:
    return module.split("_")[0]


def _imports(module: str):
    """(level, dotted module, names) of every import in ``module``'s source, at any depth."""
    tree = ast.parse((WIDGETS / f"{module}.py").read_text(), filename=f"{module}.py")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name, []


def test_the_views_are_found():
    assert {"filter_grid", "neuron_picker", "activation_browser", "correspondence_matrix"} <= VIEWS
    assert VIEWS <= set(MODULES) and "base" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_a_widget_module_imports_only_the_base_its_helpers_and_lower_layers(module):
    bad = []
    for level, name, names in _imports(module):
        if level == 0:
            if name.startswith("ipynetviz"):
                bad.append(f"absolute import {name} (use a relative one to a lower layer)")
            continue
        if level == 2:  # ..engine, ..methods.units, ...
            if name.split(".")[0] not in BELOW:
                bad.append(f"..{name}: not a lower layer ({sorted(BELOW)})")
            continue
        target = name.split(".")[0]
        if level != 1 or not target:
            bad.append(f"{'.' * level}{name}: import the modules by name")
        elif target == "base":
            continue
        elif target in VIEWS:
            borrowed = sorted(set(names) - PUBLIC_VIEWS)
            if borrowed:
                bad.append(f".{target} is another view's module; take {borrowed or names} from .base instead")
        elif _family(target) != _family(module):
            bad.append(f".{target} helps {_family(target)}_* views only; shared parts belong in .base")
    assert not bad, f"widgets/{module}.py: " + "; ".join(bad)


def test_the_base_imports_no_view():
    names = {name.split(".")[0] for level, name, _ in _imports("base") if level == 1}
    assert not names, f"widgets/base.py imports {sorted(names)}: the base stands below every view"
