"""Modified ReLU backward passes for guided backprop and deconvnet, for every way a model can call ReLU.

Hooks on ``nn.ReLU`` modules (Captum's approach) miss ``F.relu`` / ``torch.relu`` / ``x.relu_()`` called inside a
``forward``. A :class:`torch.overrides.TorchFunctionMode` sees every one of those calls, module or not, in place
or not, reused or not, so :class:`ReluOverride` swaps each for a ReLU whose backward follows the rule:

* ``"guided"`` (Springenberg et al. 2015): pass the gradient only where it is positive *and* the forward input
  was positive;
* ``"deconvnet"`` (Zeiler & Fergus 2014): pass the positive part of the gradient, whatever the forward input.

The forward values are those of the ordinary ReLU, so the network's scores do not change.
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


class ReluOverride(TorchFunctionMode):
    """Within this context every ReLU call uses the ``rule``'s backward; ``relus_seen`` counts the calls.

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
            raise ModelError(f"no ReLU was called in the model's forward pass: {name} needs ReLUs "
                             "(nn.ReLU, F.relu or torch.relu). Use gradient() or saliency() for this model")
        return result


def relu_override(rule: str):
    """A factory for :meth:`Inspector.gradient_of`'s ``relu_override`` argument."""
    if rule not in RULES:
        raise SettingError(f"unknown ReLU rule {rule!r}; use one of {RULES}")
    return lambda: ReluOverride(rule)
