"""Receptive fields from the tracer against the gradient-based measurement, on hand-built and torchvision models.

Reference: ``measure_receptive_field`` backpropagates from one unit and takes the bounding box of the input pixels
with nonzero gradient. For the two to agree exactly every path must carry gradient, so the measured copy of a
model gets positive weights, a positive input (every ReLU passes, no sum cancels); and max pooling,
which sends gradient to one pixel per window, is swapped for average pooling over the same windows (depthwise
positive conv when dilated). The tracer itself runs on the original model. On the original model, with random
weights and input, the measured box must still lie inside the computed one.
"""
from __future__ import annotations

import copy
import doctest
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ipynetviz.engine import receptive_field as rf_module
from ipynetviz.engine.errors import InputError, IpynetvizError, LayerNotFoundError, TargetError
from ipynetviz.engine.receptive_field import (ReceptiveField, ReceptiveFieldWarning, measure_receptive_field,
                                              receptive_fields)

torch.set_num_threads(2)


# ----------------------------------------------------------------------------------------------- helpers
class WindowPool(nn.Module):
    """Positive depthwise average over max-pool windows, dilation included: the measurable stand-in for max."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        p = self.pool
        if p.dilation in (1, (1, 1)):
            return F.avg_pool2d(x, p.kernel_size, p.stride, p.padding, p.ceil_mode)
        assert not p.ceil_mode
        k = nn.modules.utils._pair(p.kernel_size)
        weight = torch.ones(x.shape[1], 1, *k, dtype=x.dtype)
        return F.conv2d(x, weight, None, p.stride, p.padding, p.dilation, groups=x.shape[1])


def measurable(model: nn.Module, seed: int = 0) -> nn.Module:
    """Copy with positive weights and window-average pooling, names unchanged."""
    model = copy.deepcopy(model).eval()
    g = torch.Generator().manual_seed(seed)
    for m in list(model.modules()):
        weight = m._parameters.get("weight")
        # conv, linear, functional blocks; not norm layers, nor big classifiers no measured unit reaches
        if weight is not None and weight.ndim >= 2 and weight.numel() < 10**6:
            with torch.no_grad():
                weight.copy_((torch.rand(weight.shape, generator=g) + 0.5) / weight[0].numel())
                if m._parameters.get("bias") is not None:
                    m.bias.fill_(0.01)
        for name, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(m, name, WindowPool(child))
    if hasattr(model, "pool"):
        model.pool = "avg"
    return model


def units(h: int, w: int) -> list[tuple[int, int]]:
    """The four corners and the centre of an h x w map."""
    return sorted({(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2)})


def positive_input(shape, seed=1) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) + 0.5


def check_exact(model, x, names, **kwargs) -> dict:
    """Assert that the traced box equals the measured one for several units of each layer; return the fields."""
    fields = receptive_fields(model, x, **kwargs)
    ref, size = measurable(model), tuple(x.shape[-2:])
    for name in names:
        rf = fields[name]
        assert rf is not None and rf.exact, (name, rf)
        ys, xs = zip(*units(*rf.output_size))
        measured = measure_receptive_field(ref, name, x, list(ys), list(xs))
        for y, x_, m in zip(ys, xs, measured):
            box = rf.box(y, x_, clip_to=size)
            if m is None:  # no input gradient at all: the unit sees padding only, so its box must be empty
                assert box[0] == box[2] or box[1] == box[3], (name, y, x_, box)
            else:
                assert box == m, (name, y, x_, box, m, rf)
    return fields


def check_contains(model, x, names) -> dict:
    """Assert the measured box (random weights and input, max pooling kept) lies inside the traced one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReceptiveFieldWarning)
        fields = receptive_fields(model, x)
    size = tuple(x.shape[-2:])
    for name in names:
        rf = fields[name]
        ys, xs = zip(*units(*rf.output_size))
        for y, x_, m in zip(ys, xs, measure_receptive_field(model, name, x, list(ys), list(xs))):
            if m is None:  # a dead unit (random weights): no gradient, nothing to contain
                continue
            for t, l, b, r in (rf.box(y, x_, clip_to=size), rf.box(y, x_)):  # traced box, and affine unclipped
                assert t <= m[0] and l <= m[1] and m[2] <= b and m[3] <= r, (name, y, x_, (t, l, b, r), m)
    return fields


def hand_rf(layers) -> tuple[int, int, int]:
    """Textbook recurrence over (kernel, stride, padding, dilation): size, jump, offset of the last layer."""
    size, jump, offset = 1, 1, 0
    for k, s, p, *d in layers:
        d = d[0] if d else 1
        size, offset, jump = size + (k - 1) * d * jump, offset - p * jump, jump * s
    return size, jump, offset


def no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())


# ------------------------------------------------------------------------------------------------ models
def chain() -> nn.Sequential:
    """Padding, dilation, stride per axis, 'same' with an even kernel, ceil-mode and dilated pools, reflect.

    Layer 0 (2x2, stride 2) leaves the last row and column of an odd-sized input unseen, so layer 2's last units
    reach past layer 0 into padding: their true fields end one pixel before the affine formula says.
    """
    return nn.Sequential(
        nn.Conv2d(2, 4, 2, stride=2), nn.ReLU(),                                   # 0, 1
        nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2), nn.BatchNorm2d(4),    # 2, 3
        nn.AvgPool2d(2),                                                           # 4
        nn.Conv2d(4, 4, 4, padding="same"), nn.ReLU(inplace=True),                 # 5, 6
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),                      # 7
        nn.Conv2d(4, 4, (3, 5), stride=(1, 2), padding="valid"),                   # 8
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),                     # 9
        nn.MaxPool2d(2, stride=1, dilation=2), nn.Dropout(0.5),                    # 10, 11
    )


class FunctionalBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3) * 0.3)
        self.stride = stride

    def forward(self, x):
        return torch.relu(F.conv2d(x, self.weight, stride=self.stride, padding=1))


class Functional(nn.Module):
    """Convs, pools, skip connections, cat, pad and slicing called functionally; names only on the blocks."""

    def __init__(self):
        super().__init__()
        self.block1 = FunctionalBlock(3, 6, 1)
        self.block2 = FunctionalBlock(6, 6, 2)
        self.branch = FunctionalBlock(6, 6, 1)
        self.head = nn.Conv2d(12, 4, 1)
        self.pool = "max"  # measurable() switches it to "avg"

    def forward(self, x):
        pool = F.max_pool2d if self.pool == "max" else F.avg_pool2d
        x = pool(self.block1(x), 2)                       # k2 s2
        y = self.block2(x)
        y = y + F.avg_pool2d(x, 3, stride=2, padding=1)  # skip connection, same stride
        z = torch.cat([y, self.branch(y)], dim=1)        # channels: union
        z = F.pad(z, (1, 2, 0, 1))[:, :, 1:, 2:]         # pad right/bottom, then crop top/left
        return self.head(z).sigmoid()


# ------------------------------------------------------------------------------------------------- tests
def test_conv_pool_chain_matches_gradient_at_every_corner():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "same" with an even kernel copies the input
        x = positive_input((1, 2, 125, 157))
        fields = check_exact(chain(), x, [str(i) for i in range(12)])
    rf = fields["11"]
    h_path = [(2, 2, 0), (3, 2, 2, 2), (2, 2, 0), (4, 1, 1), (3, 2, 1), (3, 1, 0), (3, 1, 1), (2, 1, 0, 2)]
    w_path = [(2, 2, 0), (3, 2, 2, 2), (2, 2, 0), (4, 1, 1), (3, 2, 1), (5, 2, 0), (3, 1, 1), (2, 1, 0, 2)]
    assert (rf.size[0], rf.stride[0], rf.offset[0]) == hand_rf(h_path) == (150, 16, -36)
    assert (rf.size[1], rf.stride[1], rf.offset[1]) == hand_rf(w_path) == (246, 32, -52)
    # layer 0 never sees the last row: the affine box clipped to the image overshoots by 2 there, the traced
    # (and measured) box does not
    two = fields["2"]
    assert two.box(30, 0) == (116, -4, 126, 6) and two.box(30, 0, clip_to=(125, 157)) == (116, 0, 122, 6)


def test_functional_convs_pools_skip_cat_pad_and_slices_match_gradient():
    x = positive_input((1, 3, 37, 42))
    fields = check_exact(Functional(), x, ["block1", "block2", "branch", "head"])
    # head: F.pad(1, 2, 0, 1) then [1:, 2:] leaves a last column that only sees padding
    top, left, bottom, right = fields["head"].box(4, 11, clip_to=(37, 42))
    assert fields["head"].output_size == (9, 12) and left == right
    assert (fields["block2"].size, fields["block2"].stride) == ((8, 8), (4, 4))
    check_contains(Functional(), torch.randn(1, 3, 37, 42), ["block2", "head"])


def resnet_path(stage: int, block: int) -> list[tuple]:
    """(kernel, stride, padding) of the longest path to the end of layer{stage}.{block} in resnet18."""
    path = [(7, 2, 3), (3, 2, 1)]
    for s in range(1, stage + 1):
        for b in range(2 if s < stage else block + 1):
            path += [(3, 2 if s > 1 and b == 0 else 1, 1), (3, 1, 1)]
    return path


def test_resnet18_skip_connections_and_downsampling():
    torch.manual_seed(0)
    model, x = torchvision.models.resnet18(weights=None), positive_input((1, 3, 96, 96))
    fields = check_exact(model, x, ["conv1", "maxpool", "layer1.0", "layer2.0", "layer3.1"])
    for stage, block in [(1, 0), (2, 0), (3, 1), (4, 1)]:
        rf = fields[f"layer{stage}.{block}"]
        assert (rf.size[0], rf.stride[0], rf.offset[0]) == hand_rf(resnet_path(stage, block)), (stage, block)
    assert fields["layer4"].size == (435, 435) and fields["layer4"].stride == (32, 32)  # the published figure
    assert fields["layer2.0.downsample"].size == (43, 43)  # a 1x1 conv over layer1's 43-pixel fields
    assert fields["avgpool"].stride == (0, 0) and fields["avgpool"].box(0, 0, clip_to=(96, 96)) == (0, 0, 96, 96)
    assert fields["fc"] is None
    check_contains(model, torch.randn(1, 3, 96, 96), ["maxpool", "layer2.0", "layer3.1"])


def test_vgg11_and_alexnet_features_and_uneven_adaptive_pool():
    torch.manual_seed(0)
    vgg, x = torchvision.models.vgg11(weights=None), positive_input((1, 3, 64, 64))
    fields = check_exact(vgg, x, ["features.2", "features.7", "features.13", "features.20"])
    assert fields["features.20"].size == (150, 150) and fields["features.20"].stride == (32, 32)
    assert fields["classifier.0"] is None and fields["classifier.6"] is None
    alex, x = torchvision.models.alexnet(weights=None), positive_input((1, 3, 127, 127))
    fields = check_exact(alex, x, ["features.0", "features.2", "features.5", "features.12"])
    assert fields["features.10"].size == (163, 163) and fields["features.12"].size == (195, 195)  # published
    # adaptive pooling from 3x3 to 6x6 has uneven bins: the summary is a superset, the traced box still exact
    pool = fields["avgpool"]
    assert not pool.exact and pool.output_size == (6, 6)
    ys, xs = [0, 1, 2, 5], [5, 2, 3, 0]
    for y, x_, m in zip(ys, xs, measure_receptive_field(measurable(alex), "avgpool", x, ys, xs)):
        assert pool.box(y, x_, clip_to=(127, 127)) == m
        t, l, b, r = pool.box(y, x_)
        assert t <= m[0] and l <= m[1] and m[2] <= b and m[3] <= r
