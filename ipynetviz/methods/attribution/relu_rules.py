"""Modified activation backward passes for guided backprop and deconvnet, for every way a model calls them.

Hooks on ``nn.ReLU`` modules (Captum's approach) miss ``F.relu`` / ``torch.relu`` / ``x.relu_()`` called inside a
``forward``. A :class:`torch.overrides.TorchFunctionMode` sees every one of those calls, module or not, in place
or not, reused or not, so :class:`ReluOverride` swaps each for an activation whose backward follows the rule.
For an elementwise activation ``y = s(x)`` (McAllester's lecture statement of the rule):

* ``"guided"`` (Springenberg et al. 2015): ``x.grad = I[y.grad > 0] * y.grad * s'(x)``; for ReLU that passes the
  gradient only where it is positive *and* the forward input was positive;
* ``"deconvnet"`` (Zeiler & Fergus 2014): ``x.grad = max(y.grad, 0)``, whatever the forward input.

The rule applies at ReLU, ReLU6 (a Hardtanh), LeakyReLU, ELU, CELU, SELU, SiLU, GELU, Hardswish and Mish, as modules or
functional calls. Sigmoid, Tanh and Hardsigmoid are left alone: in the architectures users bring (torchvision's
squeeze-excitation blocks, attention) they gate channels rather than act as the unit's activation, and the
rule would cut the gradient through the gate. The forward values are the ordinary ones, so the network's
scores do not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ...engine.errors import ModelError, SettingError

RULES = ("guided", "deconvnet")


class _GuidedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = x.clamp_min(0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, = ctx.saved_tensors
        return grad.clamp_min(0) * (out > 0)


class _GuidedReluInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.clamp_min_(0)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        out, = ctx.saved_tensors
        return grad.clamp_min(0) * (out > 0)


class _DeconvRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


class _DeconvReluInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.clamp_min_(0)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


_FUNCTIONS = {("guided", False): _GuidedRelu, ("guided", True): _GuidedReluInplace,
              ("deconvnet", False): _DeconvRelu, ("deconvnet", True): _DeconvReluInplace}
# F.relu_ is torch.relu_; nn.ReLU calls F.relu, which the mode sees before it reaches torch.relu
_OUT_OF_PLACE = {F.relu, torch.relu, torch.Tensor.relu}
_IN_PLACE = {torch.relu_, torch.Tensor.relu_}
# the other elementwise activations, seen at their torch.nn.functional entry (what their modules call)
# with their parameters after ``input`` (positional order, defaults); some are C builtins without a signature
_OTHER_ACTIVATIONS = {
    F.relu6: (("inplace", False),), F.hardtanh: (("min_val", -1.0), ("max_val", 1.0), ("inplace", False)),
    F.leaky_relu: (("negative_slope", 0.01), ("inplace", False)),
    F.elu: (("alpha", 1.0), ("inplace", False)), F.celu: (("alpha", 1.0), ("inplace", False)),
    F.selu: (("inplace", False),), F.silu: (("inplace", False),), F.gelu: (("approximate", "none"),),
    F.hardswish: (("inplace", False),), F.mish: (("inplace", False),),
}


def _bind(func, args: tuple, kwargs: dict) -> tuple:
    """(input, keyword arguments with ``inplace`` off) of one activation call."""
    x = args[0] if args else kwargs.get("input")
    bound = {}
    for i, (name, default) in enumerate(_OTHER_ACTIVATIONS[func]):
        bound[name] = args[i + 1] if len(args) > i + 1 else kwargs.get(name, default)
    if "inplace" in bound:  # computed out of place: its module uses the returned value
        bound["inplace"] = False
    return x, bound


class _RuleActivation(torch.autograd.Function):
    """Any elementwise activation ``func``: its own forward, the rule's backward (``s'`` computed by autograd)."""

    @staticmethod
    def forward(ctx, x, rule, func, kwargs):
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            y = func(xd, **kwargs)
            slope, = torch.autograd.grad(y, xd, torch.ones_like(y)) if rule == "guided" else (None,)
        ctx.rule = rule
        ctx.save_for_backward(slope if slope is not None else torch.empty(0))
        return y.detach()

    @staticmethod
    def backward(ctx, grad):
        if ctx.rule == "deconvnet":
            return grad.clamp_min(0), None, None, None
        slope, = ctx.saved_tensors
        return grad.clamp_min(0) * slope, None, None, None


class ReluOverride(TorchFunctionMode):
    """Within this context every activation call uses the ``rule``'s backward; ``relus_seen`` counts the calls.

    Args:
        rule: "guided" or "deconvnet".
        require_relu: on exit without error, raise :class:`ModelError` if no ReLU was called.

    Example:
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> with ReluOverride("deconvnet") as mode:
        ...     y = torch.relu(x)
        >>> y.backward(torch.tensor([3.0, -1.0])); x.grad.tolist(), mode.relus_seen
        ([3.0, 0.0], 1)
    """

    def __init__(self, rule: str, require_relu: bool = True):
        super().__init__()
        if rule not in RULES:
            raise SettingError(f"unknown ReLU rule {rule!r}; use one of {RULES}")
        self.rule = rule
        self.require_relu = require_relu
        self.relus_seen = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _OTHER_ACTIVATIONS:
            x, bound = _bind(func, args, kwargs)
            if isinstance(x, torch.Tensor) and x.is_floating_point() and x.requires_grad and torch.is_grad_enabled():
                self.relus_seen += 1
                return _RuleActivation.apply(x, self.rule, func, bound)
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                self.relus_seen += 1
            return func(*args, **kwargs)
        if func in _OUT_OF_PLACE or func in _IN_PLACE:
            x = args[0] if args else kwargs.get("input", kwargs.get("self"))
            inplace = func in _IN_PLACE or bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                self.relus_seen += 1
                # an in-place ReLU on a tensor that needs no grad has no backward to modify
                if inplace and not (x.requires_grad and torch.is_grad_enabled()):
                    return x.clamp_min_(0)
                return _FUNCTIONS[(self.rule, inplace)].apply(x)
        return func(*args, **kwargs)

    def __exit__(self, exc_type, exc, tb):
        result = super().__exit__(exc_type, exc, tb)
        if exc_type is None and self.require_relu and self.relus_seen == 0:
            name = "guided backprop" if self.rule == "guided" else "deconvnet"
            raise ModelError(f"no activation was called in the model's forward pass: {name} needs ReLUs or "
                             "ReLU-like activations (ReLU6, LeakyReLU, ELU, SiLU, GELU, Hardswish, Mish). Use "
                             "gradient() or saliency() for this model")
        return result


def relu_override(rule: str):
    """A factory for :meth:`Inspector.gradient_of`'s ``relu_override`` argument."""
    if rule not in RULES:
        raise SettingError(f"unknown ReLU rule {rule!r}; use one of {RULES}")
    return lambda: ReluOverride(rule)
