"""The layer tree of an inspected model: the one traced forward pass that lists layers in call order, their
output shapes and layouts (see :mod:`.layout`), and their receptive fields. :class:`Inspector` inherits it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .adapter import Adapted
from .errors import LayerNotFoundError, ModelError
from .hooks import first_tensor
from .layout import Layout, LayoutTracer, layout_of

__all__ = ["LayerInfo", "LayerTree"]

_NOT_CALLED = (nn.ModuleList, nn.ModuleDict)
_REORDERED = ("channels_last", "tokens", "windows")  # layouts whose captured outputs are turned canonical


@dataclass(frozen=True)
class LayerInfo:
    """What one layer is: its module type, output shape (per sample), channels and receptive field."""

    name: str
    module_type: str
    output_shape: tuple[int, ...] | None
    channels: int | None
    receptive_field: Any  # ReceptiveField | None
    num_params: int
    layout: Layout | None = None
    raw_shape: tuple[int, ...] | None = None

    @property
    def spatial(self) -> bool:
        """A map over image positions (channels first or last, or a square grid of patch tokens)."""
        if self.layout is not None and self.layout.kind in ("tokens", "windows", "unknown", "vector"):
            return self.layout.spatial
        return self.output_shape is not None and len(self.output_shape) == 3


class LayerTree:
    """Layer names, shapes, layouts and receptive fields, from one traced forward pass (cached)."""

    def _guess_channels(self) -> int | None:
        for m in self.model.modules():
            if isinstance(m, nn.Conv2d):
                return m.in_channels
        return None

    @property
    def input_size(self) -> tuple[int, int, int] | None:
        """(C, H, W) the model takes: as given, or the first of 224/64/32 that ran."""
        if self._input_size is None:
            self._do_trace()
        return self._input_size

    @property
    def expected_channels(self) -> int | None:
        if self._input_size is not None:
            return self._input_size[0]
        return self._guess_channels()

    def _do_trace(self) -> dict:
        if self._trace is not None:
            return self._trace
        sizes = [self._input_size] if self._input_size else [
            (self.expected_channels or 3, s, s) for s in (224, 64, 32)]
        order: list[str] = []
        shapes: dict[str, tuple] = {}
        outputs: dict[str, torch.Tensor] = {}
        out_shape = None
        failures: list[str] = []
        last_error: BaseException | None = None
        for size in sizes:
            order.clear()
            shapes.clear()
            outputs.clear()

            def pre(name):
                def fn(module, inputs):
                    if name not in order:
                        order.append(name)
                return fn

            def post(name):
                def fn(module, inputs, output):
                    t = first_tensor(output)
                    if t is not None and name not in shapes:
                        shapes[name] = tuple(t.shape[1:])
                        outputs[name] = t
                return fn
            handles = []
            try:
                for name, m in self._modules.items():
                    if name and not isinstance(m, _NOT_CALLED):
                        handles.append(m.register_forward_pre_hook(pre(name)))
                        handles.append(m.register_forward_hook(post(name)))
                tracer = LayoutTracer()
                with self.eval_guard(), torch.no_grad(), tracer:
                    p = next(self.model.parameters(), None)
                    dtype = p.dtype if p is not None else torch.float32
                    out = self.model(torch.zeros((1,) + tuple(size), device=self.device, dtype=dtype))
                out_shape = tuple(first_tensor(out).shape[1:])
                if self._input_size is None:
                    self._input_size = tuple(size)
                break
            except Exception as err:  # try the next size; all failing is an error that shows each reason
                failures.append(f"{tuple(size)}: {type(err).__name__}: {err}")
                last_error = err
            finally:
                for h in handles:
                    h.remove()
        if out_shape is None:
            tried = "; ".join(failures)
            hint = ("pass the size it takes, e.g. Inspector(model, input_size=(1, 28, 28))" if self._input_size is None
                    else "check input_size") + (
                "; if the model does not take one image tensor, give Inspector(..., input_adapter=fn) a function "
                "from the image batch to its arguments" if not isinstance(self.model, Adapted) else "")
            raise ModelError(f"the model failed on a zero batch at every input size tried ({tried}); {hint}") \
                from last_error
        layouts = {n: layout_of(tracer.roles_of(outputs[n]), shapes[n]) for n in shapes}
        raw = dict(shapes)
        shapes = {n: layouts[n].canonical_shape(raw[n]) if layouts[n].kind in _REORDERED else raw[n] for n in raw}
        self._trace = {"order": list(order), "shapes": shapes, "raw_shapes": raw, "layouts": layouts,
                       "output": out_shape}
        return self._trace

    @property
    def layers(self) -> list[str]:
        """Dotted names of inspectable layers, in the order the forward pass first calls them."""
        return list(self._do_trace()["order"])

    def module(self, name: str) -> nn.Module:
        """The module called ``name``; raises :class:`LayerNotFoundError` with close matches."""
        if not isinstance(name, str) or not name or name not in self._modules:
            raise LayerNotFoundError(name, self.layers)
        return self._modules[name]

    def layers_of(self, *types: type) -> list[str]:
        """Layers whose module is an instance of ``types`` (e.g. ``insp.layers_of(nn.Conv2d)``)."""
        return [n for n in self.layers if isinstance(self._modules[n], types)]

    @property
    def conv_layers(self) -> list[str]:
        return self.layers_of(nn.Conv2d)

    def layer_shape(self, name: str) -> tuple | None:
        """Output shape of one sample at ``name`` for the model's input size (None if unknown)."""
        self.module(name)
        return self._do_trace()["shapes"].get(name)

    @property
    def num_classes(self) -> int | None:
        out = self._do_trace()["output"]
        if out is None:
            return len(self.class_names) if self.class_names else None
        n = 1
        for s in out:
            n *= s
        return n

    def receptive_field(self, name: str, local: bool = False):
        """Receptive field of ``name``'s units (size, stride, offset), or None for non-spatial outputs.

        Args:
            local: False (default): the exact field, every dependency followed as the gradient does; after a
                squeeze-excitation gate (MobileNetV3, EfficientNet, RegNetY) that is the whole image. True: the
                field of the local path only, ignoring global gates (they only rescale channels), as
                receptive-field tables quote for those nets: what a unit's *pattern* is made of.
        """
        self.module(name)
        attr = "_rf_local" if local else "_rf"
        if getattr(self, attr, None) is None:
            from .receptive_field import receptive_fields
            self._do_trace()
            example = torch.zeros((1,) + tuple(self.input_size), device=self.device)
            with self.eval_guard():
                setattr(self, attr, receptive_fields(self.model, example, global_context=not local))
        return getattr(self, attr).get(name)

    def crop_field(self, name: str) -> tuple[Any, bool]:
        """The field to crop a unit's patch with, and whether it ignores global gates.

        The exact field, unless it is the whole input while the local path's is not (a squeeze-excitation gate
        made it global): then the local field, marked, so top patches show what the unit's pattern is made of.
        """
        exact = self.receptive_field(name)
        if exact is None or self.input_size is None:
            return exact, False
        h, w = self.input_size[-2:]
        if exact.size[0] < h and exact.size[1] < w:
            return exact, False
        local = self.receptive_field(name, local=True)
        if local is not None and (local.size[0] < exact.size[0] or local.size[1] < exact.size[1]):
            return local, True
        return exact, False

    def layer_info(self, name: str) -> LayerInfo:
        """Module type, output shape, channel count and receptive field of one layer."""
        m = self.module(name)
        shape = self.layer_shape(name)
        trace = self._do_trace()
        return LayerInfo(name=name, module_type=type(m).__name__, output_shape=shape,
                         channels=None if not shape else shape[0], receptive_field=self.receptive_field(name),
                         num_params=sum(p.numel() for p in m.parameters()), layout=trace["layouts"].get(name),
                         raw_shape=trace["raw_shapes"].get(name))

    @property
    def spatial_layers(self) -> list[str]:
        """Layers whose canonical output is a (C, H, W) map of image positions, in forward order.

        Channels-last layers and square grids of patch tokens count; window attention (N, windows, tokens, D)
        does not. A 4-D output whose layout the trace could not tell is read as (C, H, W) and kept.
        """
        trace = self._do_trace()
        return [n for n in trace["order"] if len(trace["shapes"].get(n) or ()) == 3
                and trace["layouts"][n].kind != "windows"]

    def layout(self, name: str) -> Layout | None:
        """How layer ``name`` lays out its output (channels first or last, tokens, ...), found by tracing."""
        self.module(name)
        return self._do_trace()["layouts"].get(name)
