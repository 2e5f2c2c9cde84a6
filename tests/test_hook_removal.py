"""After any public call returns or raises, no hook is left and the model's state is as it was.

Three cases per call: normal, bad target (unknown layer / class out of range), and a module that raises.
"""
import copy

import pytest
import torch
from torch import nn

from ipynetviz.engine import Inspector, IpynetvizError, Unit, hooks_left
from tests.conftest import Boom, small_cnn
from tests.hook_cases import CASES


def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad for p in model.parameters()], {k: v.clone() for k, v in model.state_dict().items()})


def _assert_unchanged(model, before):
    after = _state(model)
    assert after[0] == before[0], "train/eval mode changed"
    assert after[1] == before[1], "requires_grad changed"
    assert all(g is None for g in after[2]), "a gradient was left in .grad"
    for k in before[3]:
        assert torch.equal(before[3][k], after[3][k]), f"{k} changed"
    assert hooks_left(model) == [], f"hooks left on {hooks_left(model)}"


def _model(train: bool):
    m = small_cnn()
    m.train(train)
    m.conv3.weight.requires_grad_(False)
    return m


IMAGES = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("train", [False, True])
def test_normal_call_leaves_no_trace(name, train):
    m = _model(train)
    insp = Inspector(m, input_size=(3, 32, 32), device="cpu")
    before = _state(m)
    CASES[name](insp, IMAGES, Unit("conv2", 1), "conv2")
    _assert_unchanged(m, before)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_target_raises_clearly_and_leaves_no_trace(name):
    m = _model(True)
    insp = Inspector(m, input_size=(3, 32, 32), device="cpu")
    before = _state(m)
    with pytest.raises(IpynetvizError):
        CASES[name](insp, IMAGES, 99, "conv_9")
    _assert_unchanged(m, before)


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_that_raises_leaves_no_trace(name):
    m = _model(True)
    m.add_module("boom", Boom())  # appended after the classifier: every full forward fails there
    insp = Inspector(m, input_size=(3, 32, 32), device="cpu")
    before = _state(m)
    try:
        CASES[name](insp, IMAGES, 1, "fc")
    except Exception:
        pass  # raising is fine; leaving hooks or state behind is not
    _assert_unchanged(m, before)
