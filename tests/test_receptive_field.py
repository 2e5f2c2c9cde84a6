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
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # chain()'s layer 5


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
    if hasattr(model, "functional_pool"):
        model.functional_pool = F.avg_pool2d
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


def torchvision_model(arch: str) -> nn.Module:
    """A torchvision architecture (weights=None) without the seconds its 100M-weight classifier takes to init.

    Built on the meta device, then given memory; small layers get their own init, big Linear layers zeros
    (no measured unit reaches them).
    """
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None)
    model = model.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear) and m.weight.numel() > 10**6:
                m.weight.zero_(), m.bias.zero_()
            elif hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return model.eval()


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
        self.functional_pool = F.max_pool2d  # measurable() switches it to F.avg_pool2d

    def forward(self, x):
        x = self.functional_pool(self.block1(x), 2)       # k2 s2
        y = self.block2(x)
        y = y + F.avg_pool2d(x, 3, stride=2, padding=1)  # skip connection, same stride
        z = torch.cat([y, self.branch(y)], dim=1)        # channels: union
        z = F.pad(z, (1, 2, 0, 1))[:, :, 1:, 2:]         # pad right/bottom, then crop top/left
        return self.head(z).sigmoid()


# ------------------------------------------------------------------------------------------------- tests
def test_conv_pool_chain_matches_gradient_at_every_corner():
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
    model, x = torchvision_model("resnet18"), positive_input((1, 3, 96, 96))
    fields = check_exact(model, x, ["conv1", "layer1.0", "layer2.0", "layer3.1"])
    for stage, block in [(1, 0), (2, 0), (3, 1), (4, 1)]:
        rf = fields[f"layer{stage}.{block}"]
        assert (rf.size[0], rf.stride[0], rf.offset[0]) == hand_rf(resnet_path(stage, block)), (stage, block)
    assert fields["layer4"].size == (435, 435) and fields["layer4"].stride == (32, 32)  # the published figure
    assert fields["layer2.0.downsample"].size == (43, 43)  # a 1x1 conv over layer1's 43-pixel fields
    assert fields["avgpool"].stride == (0, 0) and fields["avgpool"].box(0, 0, clip_to=(96, 96)) == (0, 0, 96, 96)
    assert fields["fc"] is None
    check_contains(model, torch.randn(1, 3, 96, 96), ["maxpool", "layer3.1"])


def test_vgg11_and_alexnet_features_and_uneven_adaptive_pool():
    vgg, x = torchvision_model("vgg11"), positive_input((1, 3, 64, 64))
    fields = check_exact(vgg, x, ["features.2", "features.20"])
    conv, pool = (3, 1, 1), (2, 2, 0)
    vgg11_path = [conv, pool, conv, pool, conv, conv, pool, conv, conv, pool, conv, conv, pool]
    rf = fields["features.20"]
    assert (rf.size[0], rf.stride[0], rf.offset[0]) == hand_rf(vgg11_path) and rf.size == (150, 150)
    assert fields["classifier.0"] is None and fields["classifier.6"] is None
    alex, x = torchvision_model("alexnet"), positive_input((1, 3, 127, 127))
    fields = check_exact(alex, x, ["features.2", "features.12"])
    alexnet_path = [(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]
    rf = fields["features.12"]
    assert (rf.size[0], rf.stride[0], rf.offset[0]) == hand_rf(alexnet_path) == (195, 32, -66)  # pool5: published
    assert fields["features.10"].size == (163, 163)  # conv5: published
    # adaptive pooling from 3x3 to 6x6 has uneven bins: the summary is a superset, the traced box still exact
    pool = fields["avgpool"]
    assert not pool.exact and pool.output_size == (6, 6)
    ys, xs = [0, 1, 2, 5], [5, 2, 3, 0]
    for y, x_, m in zip(ys, xs, measure_receptive_field(measurable(alex), "avgpool", x, ys, xs)):
        assert pool.box(y, x_, clip_to=(127, 127)) == m
        t, l, b, r = pool.box(y, x_)
        assert t <= m[0] and l <= m[1] and m[2] <= b and m[3] <= r


class Resample(nn.Module):
    """Transposed convs and every upsampling flavour, each behind its own name."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.tconv1 = nn.ConvTranspose2d(4, 4, 3, stride=1, padding=1)
        self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.up_bilinear = nn.Upsample(size=(29, 37), mode="bilinear", align_corners=False)
        self.tconv2 = nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1)
        self.up_bicubic = nn.Upsample(scale_factor=0.75, mode="bicubic", align_corners=True)

    def forward(self, x):
        x = self.up_bilinear(self.conv(self.up_nearest(self.tconv1(self.down(x)))))
        return self.up_bicubic(self.tconv2(x))


def test_upsampling_and_transposed_convs_give_supersets():
    x = positive_input((1, 2, 23, 30))
    fields = check_exact(Resample(), x, ["down", "tconv1"])  # stride-1 transposed conv is exact
    names = ["up_nearest", "conv", "up_bilinear", "tconv2", "up_bicubic"]
    assert not any(fields[n].exact for n in names)
    assert fields["up_nearest"].stride == (1, 1) and fields["tconv2"].output_size == (58, 74)
    assert fields["up_bilinear"].stride == pytest.approx((24 / 29, 30 / 37))  # fractions, as floats
    check_contains(measurable(Resample()), x, names)  # every path counts, so these are the true fields
    check_contains(Resample(), torch.randn(1, 2, 23, 30), names)
    # conservative, not vacuous: a unit of the nearest upsampling sees a few pixels, not the image
    t, l, b, r = fields["up_nearest"].box(12, 14, clip_to=(23, 30))
    assert b - t <= 8 and r - l <= 8


class Pools(nn.Module):
    def __init__(self, out_size):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(out_size)
        self.maxpool = nn.AdaptiveMaxPool2d(out_size)

    def forward(self, x):
        x = self.conv(x)
        return self.pool(x) + self.maxpool(x).mean(dim=(2, 3), keepdim=True) + x.amax((2, 3), keepdim=True)


@pytest.mark.parametrize("out_size, exact", [((4, 5), True), ((3, 4), False), (1, True)])
def test_adaptive_pools_exact_when_bins_are_even(out_size, exact):
    x = positive_input((1, 2, 8, 10))
    model = Pools(out_size)
    fields = receptive_fields(model, x)
    assert fields["pool"].exact == exact and fields["maxpool"].exact == exact
    ys, xs = zip(*units(*fields["pool"].output_size))
    measured = measure_receptive_field(measurable(model), "pool", x, list(ys), list(xs))
    assert [fields["pool"].box(y, x_, clip_to=(8, 10)) for y, x_ in zip(ys, xs)] == measured
    # the model's output adds global maxima: every unit of it sees the whole image, exactly
    out = receptive_fields(model, x, names=[""])[""]
    assert out.exact == exact and out.box(0, 0, clip_to=(8, 10)) == (0, 0, 8, 10)


class AlongW(nn.Module):
    """A (3, 1) conv run on the transposed map: it slides along W."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, (3, 1), padding=(1, 0))

    def forward(self, x):
        return self.conv(x.transpose(2, 3)).transpose(2, 3)


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.Sigmoid())
        self.linear = nn.Linear(4, 4)
        self.out = AlongW()

    def forward(self, x):
        x = self.conv(x)
        x = x * self.gate(x)                                          # broadcast 1x1 gate
        x = x + self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # channels-last Linear, back
        return self.out(x)


def test_se_gate_channels_last_and_transposed_axes():
    x = positive_input((1, 2, 11, 14))
    fields = check_exact(SqueezeExcite(), x, ["conv", "gate", "out"])
    assert fields["out"].box(5, 5, clip_to=(11, 14)) == (0, 0, 11, 14)  # the gate sees the whole image
    assert fields["linear"].size == (13, 16) and fields["linear"].stride == (0, 0)  # all of conv's 11x14 units
    local = receptive_fields(SqueezeExcite(), x, global_context=False)
    out = local["out"]
    assert (out.size, out.stride, out.offset) == ((3, 5), (1, 1), (-1, -2))  # the (3, 1) conv ran along W
    # the Linear's output is channels-last (N, H, W, C): still a map; without the gate its field is conv's
    assert local["linear"].size == (3, 3) and local["linear"].output_size == (11, 14)


class Rebuilt(nn.Module):
    """A map rebuilt from a Linear layer's output, and an op without a rule (pixel_shuffle)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 8 * 8, 64)
        self.unflatten = nn.Unflatten(1, (1, 8, 8))
        self.shuffle = nn.PixelShuffle(2)
        self.after = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        y = self.unflatten(self.fc(self.flatten(self.conv(x))))
        return self.after(self.shuffle(self.conv(x)) + 0 * y.mean())


def test_flat_outputs_none_rebuilt_maps_whole_and_unknown_ops_warn():
    x = positive_input((1, 1, 16, 16))
    with pytest.warns(ReceptiveFieldWarning, match="pixel_shuffle"):
        fields = receptive_fields(Rebuilt(), x)
    assert fields["flatten"] is None and fields["fc"] is None
    assert fields["conv"].exact and not fields["shuffle"].exact and not fields["after"].exact
    rebuilt = fields["unflatten"]  # a map made of Linear outputs: each unit sees the whole input
    assert (rebuilt.size, rebuilt.stride, rebuilt.offset, rebuilt.exact) == ((16, 16), (0, 0), (0, 0), False)
    assert measure_receptive_field(measurable(Rebuilt()), "unflatten", x, 3, 5) == (0, 0, 16, 16)
    assert fields["after"].box(0, 0, clip_to=(16, 16)) == (0, 0, 16, 16)
    check_contains(Rebuilt(), torch.randn(1, 1, 16, 16), ["shuffle", "after"])


class Slices(nn.Module):
    """Strided slices with None and Ellipsis, a dilated stride-2 transposed conv, grid_sample."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.sliced = nn.Identity()
        self.tconv = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, dilation=2)
        self.sampled = nn.Identity()

    def forward(self, x):
        y = self.sliced(self.conv(x)[:, None, ..., 1::2, 3:][:, 0])
        grid = torch.zeros(1, 5, 5, 2)
        return self.tconv(y), self.sampled(F.grid_sample(y, grid, align_corners=False))


def test_slices_and_strided_dilated_transposed_conv():
    x = positive_input((1, 1, 13, 17))
    with pytest.warns(ReceptiveFieldWarning, match="grid_sample"):
        check_exact(Slices(), x, ["sliced"])
    with pytest.warns(ReceptiveFieldWarning):
        fields = receptive_fields(Slices(), x, names=["sliced", "tconv", "sampled"])
    assert (fields["sliced"].size, fields["sliced"].stride, fields["sliced"].offset) == ((3, 3), (2, 1), (0, 2))
    tconv = fields["tconv"]
    assert not tconv.exact and tconv.stride == (1, 0.5)
    ys, xs = zip(*units(*tconv.output_size))
    for y, x_, m in zip(ys, xs, measure_receptive_field(measurable(Slices()), "tconv", x, list(ys), list(xs))):
        box = tconv.box(y, x_, clip_to=(13, 17))
        assert box == m if m is not None else box[0] == box[2] or box[1] == box[3]  # the traced graph is exact
    assert not fields["sampled"].exact and fields["sampled"].box(0, 0, clip_to=(13, 17)) == (0, 2, 13, 17)


class Mixers(nn.Module):
    """Same-shape ops that mix units along an axis, and padding modes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.circular = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")
        self.replicate = nn.Conv2d(2, 2, 3, padding=2, padding_mode="replicate")
        self.softmax_w = nn.Softmax(dim=-1)
        self.identity = nn.Identity()

    def forward(self, x):
        x = self.conv(x)
        a = self.replicate(x)
        b = self.softmax_w(x)
        c = self.identity(torch.flip(x, dims=[2]) + x.cumsum(1))
        return a, b, c, self.circular(x)


def test_padding_modes_and_axis_mixing_ops():
    x = positive_input((1, 1, 12, 15))
    fields = check_exact(Mixers(), x, ["replicate", "softmax_w"])
    assert fields["replicate"].size == (5, 5) and fields["softmax_w"].box(6, 7, clip_to=(12, 15)) == (5, 0, 8, 15)
    assert fields["identity"].exact is False and fields["identity"].size == (14, 3)  # flip: whole H; cumsum over C
    assert not fields["circular"].exact
    check_contains(measurable(Mixers()), x, ["identity", "circular"])
    check_contains(Mixers(), torch.randn(1, 1, 12, 15), ["identity", "circular"])


def test_hooks_removed_and_modes_restored_also_when_the_model_raises():
    model = Functional()
    model.train()
    model.block2.eval()
    model.head.weight.requires_grad_(False)
    before = [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()]
    x = torch.rand(1, 3, 20, 20)
    receptive_fields(model, x)
    measure_receptive_field(model, "head", x, 1, 1)
    measure_receptive_field(model, "block2", x, [0, 1], [1, 0])
    assert no_hooks(model) and all(p.grad is None for p in model.parameters())
    assert [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()] == before

    def boom(*args):
        raise RuntimeError("boom")
    model.branch.forward = boom
    for call in (lambda: receptive_fields(model, x), lambda: measure_receptive_field(model, "head", x, 0, 0)):
        with pytest.raises(RuntimeError, match="boom"):
            call()
        assert no_hooks(model)
        assert [(m.training, [p.requires_grad for p in m.parameters(recurse=False)])
                for m in model.modules()] == before
    assert not torch.overrides._is_torch_function_mode_enabled()  # the tracing mode is gone too


def test_errors_name_the_fix():
    model, x = chain(), torch.rand(1, 2, 125, 157)
    with pytest.raises(LayerNotFoundError, match="did you mean '10'"):
        receptive_fields(model, x, names=["10 "])
    with pytest.raises(InputError, match="N, C, H, W"):
        receptive_fields(model, x[0, 0])
    with pytest.raises(InputError, match="empty"):
        receptive_fields(model, x[:0])
    rf = receptive_fields(model, x, names=["2"])["2"]
    with pytest.raises(TargetError, match="outside"):
        rf.box(40, 0)
    with pytest.raises(TargetError, match="outside"):
        measure_receptive_field(model, "2", x, 0, 99)
    with pytest.raises(IpynetvizError, match="zero everywhere"):  # a dead unit: zero weights
        measure_receptive_field(nn.Sequential(nn.Conv2d(2, 1, 3)).requires_grad_(False).apply(
            lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Conv2d) else None), "0", x, 0, 0)


def test_box_center_and_docstring_examples():
    rf = ReceptiveField(size=(11, 7), stride=(4, 2), offset=(-5, -3))
    assert rf.box(0, 0) == (-5, -3, 6, 4) and rf.box(3, 2, clip_to=(10, 10)) == (7, 1, 10, 8)
    assert rf.center(1, 1) == (4.0, 2.0) and rf.output_size is None
    assert rf.to_numpy().tolist() == [[11, 7], [4, 2], [-5, -3]]
    assert rf.box(9, 9, clip_to=(10, 10)) == (10, 10, 10, 10)  # past the image: empty, clipped
    assert doctest.testmod(rf_module).failed == 0



def test_squeeze_excitation_crops_use_the_local_field_and_say_so():
    """mobilenet_v3: every exact field is global through the SE gate; crops use the local path's field, marked."""
    import torchvision

    from ipynetviz.engine import Inspector
    from ipynetviz.methods.units import top_patches
    torch.manual_seed(0)
    insp = Inspector(torchvision.models.mobilenet_v3_small(weights=None), input_size=(3, 64, 64), device="cpu")
    layer = "features.3"  # after the first SE block
    exact, local = insp.receptive_field(layer), insp.receptive_field(layer, local=True)
    assert exact.size == (64, 64) or exact.size[0] >= 64  # global, as the gradient says
    assert local.size[0] < 64 and local.exact
    field, ignores = insp.crop_field(layer)
    assert ignores and field == local
    images = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    res = top_patches(insp, images, layer, k=2)
    assert res.field_ignores_gates and res.field == local
    assert insp.crop_field("features.0") == (insp.receptive_field("features.0"), False)  # before any gate


def test_a_global_layer_is_described_as_global_not_stride_0():
    """A layer whose units all share one field (after global pooling) says "global"; a conv says its stride."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    fields = receptive_fields(net, torch.zeros(1, 3, 16, 16))
    assert fields["2"].stride == (0, 0)
    assert fields["2"].describe() == "field 15x15 px, global"  # the stride-2 conv never reaches row/column 15
    assert fields["0"].describe() == "field 3x3 px, stride 2"
