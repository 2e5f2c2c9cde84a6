"""Targets are resolved once per call into a spec that methods keep; targets accept what users hold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ipynetviz.engine import Class, Inspector, Unit
from ipynetviz.engine import targets as T
from ipynetviz.engine.errors import TargetError
from ipynetviz.methods import attribution as A
from tests.conftest import small_cnn


@pytest.fixture
def insp():
    return Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu", class_names=["a", "b", "c", "d", "e"])


@pytest.fixture
def x():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _count_resolutions(monkeypatch) -> list:
    calls = []
    real = T.resolve

    def counting(target, *args, **kw):
        if not isinstance(target, T.TargetSpec):  # passing a resolved spec down is free
            calls.append(target)
        return real(target, *args, **kw)
    monkeypatch.setattr(T, "resolve", counting)
    return calls


@pytest.mark.parametrize("run", [
    lambda insp, x, t: A.occlusion(insp, x, t, window=16, stride=16),
    lambda insp, x, t: A.saliency(insp, x, t, batch_size=1),
    lambda insp, x, t: A.guided_backprop(insp, x, t, batch_size=2),
])
@pytest.mark.parametrize("target", [None, 2, Unit("conv2", 3), np.array([0, 1, 2])])
def test_a_target_is_resolved_once_per_call(insp, x, monkeypatch, run, target):
    calls = _count_resolutions(monkeypatch)
    run(insp, x, target)
    assert len(calls) == 1, calls


def test_numpy_integers_arrays_and_names_are_classes(insp, x):
    labels = np.array([0, 1, 2])
    ref = A.saliency(insp, x, Class((0, 1, 2))).attributions
    torch.testing.assert_close(A.saliency(insp, x, labels).attributions, ref)
    torch.testing.assert_close(A.saliency(insp, x, torch.tensor([0, 1, 2])).attributions, ref)
    one = A.saliency(insp, x[:1], labels[0])           # np.int64
    torch.testing.assert_close(one.attributions, A.saliency(insp, x[:1], 0).attributions)
    named = A.saliency(insp, x, Class("c"))
    torch.testing.assert_close(named.attributions, A.saliency(insp, x, 2).attributions)
    assert named.target == "class 2 (c)"
    spec = insp.resolve_target(None, x)
    assert spec.predicted and spec.classes.tolist() == insp.forward(x).argmax(1).tolist()
    assert spec.rows(slice(1, 3)).classes.tolist() == spec.classes[1:].tolist()


@pytest.mark.parametrize("make, words", [
    (lambda: Class(3.7), "integer index or a class name"),
    (lambda: Class([1, 2.5]), "integer index or a class name"),
    (lambda: Unit("conv2", 2.5), "channel must be an integer"),
    (lambda: Unit("conv2", "3"), "channel must be an integer"),
    (lambda: Unit(3, 1), "layer name"),
    (lambda: T.as_target("conv3"), "Class\\('conv3'\\)"),
    (lambda: T.as_target(True), "class index or Unit"),
])
def test_bad_targets_say_the_fix(make, words):
    with pytest.raises(TargetError, match=words):
        make()


def test_unknown_class_name_suggests_close_ones(insp, x):
    with pytest.raises(TargetError, match="no class named 'cc'.*did you mean 'c'"):
        A.saliency(insp, x, Class("cc"))
    bare = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    with pytest.raises(TargetError, match="no class_names"):
        A.saliency(bare, x, Class("c"))
    with pytest.raises(TargetError, match="3 class indices for 2 images"):
        A.saliency(insp, x[:2], np.array([0, 1, 2]))
