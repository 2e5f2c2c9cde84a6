"""Bad input gets a clear error naming the fix, and no method leaves hooks, modes or grads behind."""
import pytest
import torch
from torch import nn

from ipynetviz.engine import (Class, InputError, Inspector, IpynetvizError, LayerNotFoundError, ModelError,
                              TargetError, Unit, hooks_left)
from ipynetviz.methods.attribution import deconvnet, gradient, guided_backprop, occlusion, saliency
from tests.conftest import Boom, small_cnn

IMAGES = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def _occlusion(insp, images, target):
    return occlusion(insp, images[:1], target=target, window=8, stride=8)


METHODS = {"gradient": gradient, "saliency": saliency, "guided_backprop": guided_backprop, "deconvnet": deconvnet,
           "occlusion": _occlusion}


def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad is None for p in model.parameters()])


def _model(train=True):
    m = small_cnn(seed=0)
    m.train(train)
    m.conv3.weight.requires_grad_(False)
    return m


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("target", [Class(2), Unit("relu2", 3), Unit("conv2", 1, 4, 5)])
def test_normal_calls_leave_no_trace(name, target):
    m = _model()
    insp = Inspector(m, input_size=(3, 32, 32), device="cpu")
    before = _state(m)
    METHODS[name](insp, IMAGES, target)
    assert _state(m) == before and hooks_left(m) == []


BAD_TARGETS = [
    (7, TargetError, "5 classes"),
    (Class(-1), TargetError, "out of range"),
    (Unit("conv2", 16), TargetError, "16 channels"),
    (Unit("conv_2", 1), LayerNotFoundError, "did you mean 'conv2'"),
    (Unit("conv2", 1, 99, 0), TargetError, "outside"),
]


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("target,error,words", BAD_TARGETS)
def test_bad_targets_name_the_problem_and_leave_no_trace(name, target, error, words):
    m = _model()
    insp = Inspector(m, input_size=(3, 32, 32), device="cpu")
    before = _state(m)
    with pytest.raises(error, match=words):
        METHODS[name](insp, IMAGES, target)
    assert _state(m) == before and hooks_left(m) == []


@pytest.mark.parametrize("name", sorted(METHODS))
def test_grayscale_images_for_an_rgb_model_say_how_to_convert(name):
    insp = Inspector(_model(), input_size=(3, 32, 32), device="cpu")
    gray = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    with pytest.raises(InputError, match="convert"):
        METHODS[name](insp, gray, 0)
    with pytest.raises(InputError, match="repeat"):
        METHODS[name](insp, torch.rand(2, 1, 32, 32), 0)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_module_that_raises_leaves_no_trace(name):
    m = _model()
    m.add_module("boom", Boom())
    insp = Inspector(m, input_size=(3, 32, 32), device="cpu")
    before = _state(m)
    with pytest.raises(Exception):
        METHODS[name](insp, torch.rand(2, 3, 32, 32), 1)
    assert _state(m) == before and hooks_left(m) == []


def test_no_relu_model_is_refused_by_guided_backprop_and_deconvnet():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    insp = Inspector(m, input_size=(3, 8, 8), device="cpu")
    before = _state(m)
    for method in (guided_backprop, deconvnet):
        with pytest.raises(ModelError, match="needs ReLUs.*gradient\\(\\) or saliency\\(\\)"):
            method(insp, torch.rand(1, 3, 8, 8), 0)
    assert _state(m) == before and hooks_left(m) == []
    assert gradient(insp, torch.rand(1, 3, 8, 8), 0).attributions.abs().sum() > 0


@pytest.mark.parametrize("kwargs,words", [
    ({"window": 40}, "larger than the 32x32 image; use a window of at most 32"),
    ({"window": (8, 33)}, "larger than"),
    ({"stride": 0}, "stride must be at least 1"),
    ({"window": 0}, "window must be at least 1"),
    ({"stride": 2.5}, "stride must be an int"),
    ({"fill": "noise"}, "unknown fill 'noise'"),
    ({"fill": (0.1, 0.2)}, "2 values but the model input has 3 channels"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_bad_occlusion_settings_name_the_fix(kwargs, words):
    m = _model()
    insp = Inspector(m, input_size=(3, 32, 32), device="cpu")
    before = _state(m)
    with pytest.raises(IpynetvizError, match=words.replace("(", "\\(").replace(")", "\\)")):
        occlusion(insp, IMAGES[:1], target=0, **kwargs)
    assert _state(m) == before and hooks_left(m) == []


def test_unknown_method_and_style_are_refused():
    from ipynetviz.methods.attribution import attribute
    insp = Inspector(_model(), input_size=(3, 32, 32), device="cpu")
    with pytest.raises(ValueError, match="unknown method"):
        attribute(insp, IMAGES, 0, method="lrp")
    with pytest.raises(ValueError, match="unknown kind"):
        gradient(insp, IMAGES, 0).render(0, kind="3d")


def test_methods_import_no_widget_library():
    import subprocess
    import sys
    code = ("import sys, ipynetviz.methods.attribution as a; "
            "bad = [m for m in ('ipywidgets', 'bqplot', 'anywidget') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_unit_before_the_first_relu_gets_the_gradient_not_an_error():
    """conv1's units have no ReLU on their path: guided backprop and deconvnet equal the plain gradient there."""
    from ipynetviz import methods as M
    from ipynetviz.engine import Inspector, Unit
    from tests.conftest import small_cnn
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    x = torch.rand(2, 3, 32, 32)
    ref = M.gradient(insp, x, Unit("conv1", 3)).attributions
    for fn in (M.guided_backprop, M.deconvnet):
        torch.testing.assert_close(fn(insp, x, Unit("conv1", 3)).attributions, ref)
    no_relu = Inspector(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Conv2d(2, 2, 3)),
                        input_size=(3, 8, 8), device="cpu")
    with pytest.raises(Exception, match="calls no ReLU"):
        M.guided_backprop(no_relu, torch.rand(1, 3, 8, 8), Unit("1", 0))
