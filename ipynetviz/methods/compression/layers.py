"""Which layers compression works on, and the settings every compression method checks the same way."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from ...engine.checks import check_positive_int, check_range
from ...engine.errors import LayerNotFoundError, ModelError, SettingError

# the paper quantizes conv layers to 8 bits and fully connected ones to 5 (Han et al. 2016, Sec. 3)
DEFAULT_BITS = {"conv": 8, "fc": 5}
# and stores relative indices in 8 bits for conv, 5 for fc (Sec. 2)
DEFAULT_INDEX_BITS = {"conv": 8, "fc": 5}
MAX_BITS = 16


def model_of(model_or_inspector: Any) -> nn.Module:
    """The ``nn.Module`` of an Inspector, or the module itself."""
    model = getattr(model_or_inspector, "model", model_or_inspector)
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected an Inspector or an nn.Module, got {type(model_or_inspector).__name__}")
    return model


def compressible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> module of every ``Conv2d`` / ``Linear`` (the layers that hold the weights), in definition order.

    Example:
        >>> from ipynetviz.zoo import lenet_5
        >>> list(compressible_layers(lenet_5()))
        ['conv1', 'conv2', 'fc1', 'fc2']
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    if not layers:
        raise ModelError(f"{type(model).__name__} has no Conv2d or Linear layer, so there are no weights to prune "
                         "or quantize; pass a model with conv or fully connected layers (e.g. zoo.lenet_5())")
    return layers


def kind_of(module: nn.Module) -> str:
    """``"conv"`` or ``"fc"``: which of the paper's defaults (bits, index bits) a layer gets."""
    return "conv" if isinstance(module, nn.Conv2d) else "fc"


def resolve_layers(model: nn.Module, layers: Sequence[str] | str | None) -> list[str]:
    """The requested layer names (None: all compressible layers), each checked to hold weights."""
    all_layers = compressible_layers(model)
    if layers is None:
        return list(all_layers)
    if isinstance(layers, str):
        layers = [layers]
    modules = dict(model.named_modules())
    out = []
    for name in layers:
        if name not in modules or not name:
            raise LayerNotFoundError(name, list(all_layers))
        if name not in all_layers:
            raise SettingError(f"layer {name!r} ({type(modules[name]).__name__}) has no weights to compress; "
                               f"use one of {list(all_layers)}")
        out.append(name)
    return list(dict.fromkeys(out))


def check_sparsity(value: Any, name: str = "sparsity") -> float:
    """A pruned fraction in [0, 1): pruning every weight would leave nothing to run."""
    return check_range(value, name, 0.0, 1.0, high_open=True)


def check_bits(value: Any, name: str = "bits") -> int:
    """Bits of a code, 1 to 16."""
    bits = check_positive_int(value, name)
    if bits > MAX_BITS:
        raise SettingError(f"{name} must be between 1 and {MAX_BITS}, got {value!r}; the paper uses 8 for conv "
                           f"and 5 for fc layers")
    return bits


def per_layer(value: Any, layers: Sequence[str], name: str, check, default=None) -> dict[str, Any]:
    """A setting given as one value for every layer or as ``{layer: value}`` (others get ``default``)."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in layers]
        if unknown:
            raise LayerNotFoundError(unknown[0], list(layers))
        out = {}
        for layer in layers:
            v = value.get(layer, default)
            out[layer] = None if v is None else check(v, f"{name}[{layer!r}]")
        return out
    return {layer: check(value, name) for layer in layers}


__all__ = ["compressible_layers", "resolve_layers", "check_sparsity", "check_bits", "per_layer", "kind_of",
           "model_of", "DEFAULT_BITS", "DEFAULT_INDEX_BITS"]
