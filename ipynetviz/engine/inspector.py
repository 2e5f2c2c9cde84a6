"""The Inspector: one per model. Device, eval guard, layer tree, scoped hooks, batching and the result cache."""
from __future__ import annotations

import contextlib
import math
import threading
import warnings
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import targets as _targets
from .adapter import Adapted, check_one_tensor
from .cache import ResultCache, fingerprint
from .checks import check_batch_size
from .dataset import ImageSet, as_imageset
from .errors import InputError, InputWarning, OutOfMemoryError, TargetError
from .hooks import HookSession, StopForward, first_tensor
from .inputs import apply_transform, is_model_input, normalisation_of, to_pictures, to_uint8_batch
from .layer_tree import _REORDERED, LayerInfo, LayerTree

__all__ = ["Inspector", "LayerInfo", "resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


class Inspector(LayerTree):
    """Wraps a model for inspection: every method and widget goes through one of these.

    Args:
        model: any ``nn.Module`` taking (N, C, H, W) images. It is moved to ``device``; its train/eval mode
            and parameters' ``requires_grad`` are restored after every call.
        transform: how images (PIL, uint8) become model input; a batched :class:`Preprocess`, a per-image
            torchvision-style callable, or None (scale uint8 to [0, 1]). Float tensors skip it.
        device: "auto" (CUDA when available, else CPU), or any torch device.
        class_names: names of the output classes.
        input_size: (C, H, W) the model expects; used to trace layers, shapes and receptive fields.
        cache_bytes: memory cap of the result cache.
        input_adapter: for a model whose ``forward`` does not take one image tensor: a function from the image
            batch (N, C, H, W) to the model's arguments: a tuple (positional), a dict (keyword), or anything else
            (passed as the one argument). ``Inspector(model, input_adapter=lambda x: {"image": x, "mask": None})``.
            Layer names stay the model's own.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> insp = Inspector(m, input_size=(3, 8, 8), device="cpu")
        >>> insp.layers
        ['0', '1', '2', '3', '4']
        >>> insp.activations(torch.zeros(2, 3, 8, 8), layers=["1"])["1"].shape
        torch.Size([2, 4, 6, 6])
    """

    def __init__(self, model: nn.Module, *, transform: Callable | None = None, device: Any = "auto",
                 class_names: Sequence[str] | None = None, input_size: Sequence[int] | None = None,
                 cache_bytes: int = 256 << 20, batch_size: int = 128, input_adapter: Callable | None = None):
        if not isinstance(model, nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if input_adapter is None:
            check_one_tensor(model)
        self.device = resolve_device(device)
        model = model.to(self.device)
        self.model = model if input_adapter is None else Adapted(model, input_adapter)
        self.transform = transform
        self.class_names = list(class_names) if class_names is not None else None
        self.batch_size = check_batch_size(batch_size)
        self.cache = ResultCache(cache_bytes)
        # module hooks and the saved mode/requires_grad flags belong to the one shared model: views working in
        # background threads must not run it at the same time (re-entrant, so nested guards in one thread work)
        self.model_lock = threading.RLock()
        self._modules = dict(model.named_modules())
        if input_size is not None:
            input_size = tuple(int(s) for s in input_size)
            if len(input_size) == 2:
                input_size = (self._guess_channels() or 3,) + input_size
        self._input_size = input_size
        self._trace: dict | None = None
        self._rf: dict | None = None
        self._rf_local: dict | None = None

    # ---------------------------------------------------------------- model state guards
    @contextlib.contextmanager
    def eval_guard(self, grad_params: bool = False):
        """Run the model in eval mode with parameters frozen; restore both on exit, even on error."""
        self.model_lock.acquire()
        modes = [(m, m.training) for m in self.model.modules()]
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        try:
            self.model.eval()
            if not grad_params:
                for p, _ in flags:
                    p.requires_grad_(False)
            yield self.model
        finally:
            for m, mode in modes:
                m.training = mode
            for p, flag in flags:
                p.requires_grad_(flag)
            self.model_lock.release()

    def hooks(self, capture: Iterable[str] = (), forward: dict | None = None, backward: dict | None = None,
              forward_pre: dict | None = None, detach: bool = False, stop_after_capture: bool = False) -> HookSession:
        """Scoped hooks on named layers: ``with insp.hooks(capture=["conv1"]) as cache: insp.model(x)``."""
        names = list(capture) + list(forward or {}) + list(backward or {}) + list(forward_pre or {})
        for n in names:
            self.module(n)
        # captured outputs come in the canonical layout (channels first; token layers as their patch grid)
        layouts = self._do_trace()["layouts"] if capture else {}
        views = {n: layouts[n].canonical for n in capture if n in layouts and layouts[n].kind in _REORDERED}
        return HookSession(self._modules, capture=capture, forward=forward, backward=backward,
                           forward_pre=forward_pre, detach=detach, stop_after_capture=stop_after_capture, views=views)

    # ---------------------------------------------------------------- inputs
    def _warn_if_far_outside(self, x: torch.Tensor) -> None:
        """Warn (once per place) when float model input is far outside what the preprocessing makes."""
        found = normalisation_of(self.transform)
        if found is None or x.numel() == 0:
            return
        mean, std = (np.asarray(v, dtype=float) for v in found)
        lo, hi = float(np.min((0 - mean) / std)), float(np.max((1 - mean) / std))
        big = float(x.detach().abs().max())
        if math.isfinite(big) and big > 10 * max(abs(lo), abs(hi), 1.0):  # NaN/inf get their own error
            warnings.warn(f"float input reaches {big:.4g} but this model's preprocessing gives values in about "
                          f"[{lo:.3g}, {hi:.3g}]: float input is used as model input unchanged. Pass uint8 images "
                          "(they go through the transform), or scale pixels in [0, 255] to [0, 1] and normalise",
                          InputWarning, stacklevel=4)

    def prepare(self, images: Any) -> torch.Tensor:
        """Model input (N, C, H, W) float on ``self.device`` from any accepted image kind, validated."""
        if isinstance(images, ImageSet):
            images = images.raw(slice(None))
        from_images = not is_model_input(images)
        if not from_images:
            x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
            if x.ndim == 3:
                x = x.unsqueeze(0)
            if x.ndim != 4:
                raise InputError(f"float input must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
            self._warn_if_far_outside(x)
        else:
            if images is None:
                raise InputError("no images given (None)")
            if getattr(self.transform, "batched", False) and isinstance(images, (torch.Tensor, np.ndarray)):
                # move the uint8 batch first (4x fewer bytes than float), then normalise on the device
                batch = to_uint8_batch(images, self.expected_channels)
                if isinstance(batch, torch.Tensor):
                    images = batch.to(self.device)
            x = apply_transform(images, self.transform, self.expected_channels)
        if x.shape[0] == 0 or x.numel() == 0:
            raise InputError(f"empty input (shape {tuple(x.shape)}); pass at least one image")
        c = self.expected_channels
        if c is not None and x.shape[1] != c:
            raise InputError(f"input has {x.shape[1]} channels but the model expects {c} "
                             f"(input size {self.input_size}); " +
                             ("convert grayscale images to RGB (img.convert('RGB') or x.repeat(1, 3, 1, 1))"
                              if x.shape[1] == 1 and c == 3 else "convert the images to the model's channels"))
        p = next(self.model.parameters(), None)
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        x = x.to(self.device, dtype=dtype)
        # images decoded from uint8 are finite unless the transform divides by zero; a single sum is a cheap
        # first check (10x cheaper than isfinite over every element), the full mask only when it fails
        if from_images and self.transform is None:
            return x
        if not bool(torch.isfinite(x.sum())):
            finite = torch.isfinite(x)
            bad = (~finite).reshape(x.shape[0], -1).any(1).nonzero().flatten().tolist()
            if bad:
                raise InputError(f"input contains NaN or inf values (in images {bad[:8]}); clean or drop those images")
        return x

    def _wrap_forward_error(self, err: Exception, x: torch.Tensor) -> Exception:
        msg = str(err)
        if _is_oom(err):
            return OutOfMemoryError(f"{self.device} ran out of memory at batch size {x.shape[0]}; "
                                    "pass a smaller batch_size or use device='cpu'")
        if isinstance(err, RuntimeError) and any(k in msg for k in ("shape", "size", "mat1", "Expected")):
            want = f" (C, H, W) = {self.input_size}" if self.input_size else ""
            return InputError(f"the model cannot run on input of shape {tuple(x.shape)}; it expects{want}. "
                              f"Resize the images (e.g. Preprocess(mean, std, size=(H, W))). Details: {msg}")
        return err

    # ---------------------------------------------------------------- forward passes
    def forward(self, images: Any, batch_size: int | None = None) -> torch.Tensor:
        """Logits for ``images`` (no gradient), on ``self.device``."""
        x = self.prepare(images)
        outs = [o for _, o in self._run_batches(x, (), batch_size, need_output=True)]
        return torch.cat([o[0] for o in outs])

    def predict(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities, predicted classes) for ``images``."""
        logits = self.forward(images)
        probs = logits.reshape(logits.shape[0], -1).softmax(1)
        return probs, probs.argmax(1)

    def _run_batches(self, x: torch.Tensor, layers: Sequence[str], batch_size: int | None,
                     need_output: bool) -> Iterator[tuple[slice, tuple]]:
        """Run ``x`` in batches (halving on OOM), yielding (slice, (logits or None, captured dict))."""
        bs = check_batch_size(batch_size, default=self.batch_size)
        start = 0
        n = x.shape[0]
        while start < n:
            stop = min(start + bs, n)
            xb = x[start:stop]
            try:
                with self.eval_guard(), torch.no_grad(), \
                        self.hooks(capture=layers, detach=True, stop_after_capture=not need_output) as cache:
                    try:
                        out = self.model(xb)
                    except StopForward:
                        out = None
            except Exception as err:
                if _is_oom(err) and bs > 1:
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    bs = max(1, bs // 2)
                    continue
                raise self._wrap_forward_error(err, xb) from err
            missing = [l for l in layers if l not in cache]
            if missing:
                raise InputError(f"layers {missing} were not run by the model's forward pass; "
                                 "pick layers from insp.layers")
            yield slice(start, stop), (first_tensor(out) if out is not None else None, dict(cache))
            start = stop

    def activations(self, images: Any, layers: Sequence[str] | str, batch_size: int | None = None,
                    to_cpu: bool = True) -> dict[str, torch.Tensor]:
        """Outputs of ``layers`` for ``images`` (detached), batched; only the requested layers are kept.

        The forward pass stops as soon as the last requested layer has run, so shallow layers cost less.
        """
        if isinstance(layers, str):
            layers = [layers]
        layers = list(dict.fromkeys(layers))
        if not layers:
            raise InputError("no layers requested; pass layers=[...] from insp.layers")
        for name in layers:
            self.module(name)
        if isinstance(images, ImageSet) or (isinstance(images, (list, tuple)) and len(images) > 4 * self.batch_size):
            return self._activations_streamed(as_imageset(images), layers, batch_size, to_cpu)
        x = self.prepare(images)
        out = _Collector(x.shape[0], to_cpu)
        for sl, (_, cache) in self._run_batches(x, layers, batch_size, need_output=False):
            out.put(sl, cache, layers)
        return out.result

    def _activations_streamed(self, dataset: ImageSet, layers, batch_size, to_cpu):
        out = _Collector(len(dataset), to_cpu)
        for sl, _, acts in self.iter_batches(dataset, layers, batch_size=batch_size):
            out.put(sl, acts, layers)
        return out.result

    def iter_batches(self, dataset: Any, layers: Sequence[str] | str = (), batch_size: int | None = None,
                     logits: bool = False) -> Iterator[tuple[slice, torch.Tensor, dict]]:
        """Stream a data set: yields ``(index_slice, x_on_device, {layer: activations_on_device})``.

        No hook and no eval-mode switch outlives a batch, so abandoning the loop leaves the model clean.
        With ``logits=True`` the dict also holds ``"logits"``.
        """
        if isinstance(layers, str):
            layers = [layers]
        layers = list(dict.fromkeys(layers))
        for name in layers:
            self.module(name)
        data = as_imageset(dataset)
        bs = check_batch_size(batch_size, default=self.batch_size)
        for sl, raw in data.batches(bs):
            x = self.prepare(raw)
            # (several parts only when an out-of-memory error halved the batch)
            parts = [out_and_cache for _, out_and_cache in self._run_batches(x, layers, bs, need_output=logits)]
            if len(parts) == 1:
                acts = dict(parts[0][1])
                if logits:
                    acts["logits"] = parts[0][0]
            else:
                acts = {l: torch.cat([cache[l] for _, cache in parts]) for l in layers}
                if logits:
                    acts["logits"] = torch.cat([out for out, _ in parts])
            yield sl, x, acts

    # ---------------------------------------------------------------- gradients
    def pictures(self, x: torch.Tensor, channels_last: bool = False) -> np.ndarray:
        """Prepared model input back to uint8 pictures (see :func:`ipynetviz.engine.inputs.to_pictures`)."""
        return to_pictures(x, self.transform, channels_last=channels_last)

    def resolve_target(self, target, x: torch.Tensor) -> _targets.TargetSpec:
        """Resolve ``target`` once for the prepared batch ``x``: the spec a method keeps and passes down.

        ``None`` means each image's predicted class (one forward pass); class names are looked up in
        ``class_names``; a 1-D integer array gives one class per image.
        """
        if target is None:
            with torch.no_grad():
                logits = self.forward(x)
            target = logits.reshape(logits.shape[0], -1).argmax(1).cpu()
            return _targets.resolve(target, x.shape[0], self.num_classes, self.layer_shape, self.class_names,
                                    predicted=True)
        return _targets.resolve(target, x.shape[0], self.num_classes, self.layer_shape, self.class_names)

    def gradient_of(self, x: torch.Tensor, target, relu_override=None) -> tuple[torch.Tensor, torch.Tensor]:
        """d score / d input for each sample of prepared input ``x``: returns (gradient, scores).

        ``target`` is a :class:`~ipynetviz.engine.targets.TargetSpec` from :meth:`resolve_target` (a raw target
        is resolved here). ``relu_override`` is an optional context-manager factory (used by guided backprop /
        deconvnet) entered around the forward pass.
        """
        spec = _targets.resolve(target, x.shape[0], self.num_classes, self.layer_shape, self.class_names)
        x = x.detach().clone().requires_grad_(True)
        capture = [spec.layer] if spec.layer else []
        with self.eval_guard(), torch.enable_grad():
            ctx = relu_override() if relu_override is not None else contextlib.nullcontext()
            try:
                # backward runs inside the context: overrides may rely on hooks that live only there
                with ctx, self.hooks(capture=capture, stop_after_capture=bool(spec.layer)) as cache:
                    try:
                        out = self.model(x)
                    except StopForward:  # a unit target needs nothing after its layer
                        out = None
                    scores = spec.score(first_tensor(out) if out is not None else None, cache)
                    grad, = torch.autograd.grad(scores.sum(), x)
            except (TargetError, InputError):
                raise
            except Exception as err:
                raise self._wrap_forward_error(err, x) from err
        return grad.detach(), scores.detach()

    # ---------------------------------------------------------------- cache
    def model_version(self) -> tuple:
        """Changes whenever a parameter or buffer is modified in place (training, load_state_dict)."""
        return tuple(t._version for t in self.model.parameters()) + tuple(t._version for t in self.model.buffers())

    def cached(self, method: str, params: dict, inputs: Any, compute: Callable[[], Any]):
        """Serve ``compute()`` from the LRU cache when the same method, parameters and input content repeat."""
        key = (method, fingerprint(params), fingerprint(inputs), self.model_version(), str(self.device))
        return self.cache.get_or_compute(key, compute)

    def clear_cache(self) -> None:
        """Drop every cached result."""
        self.cache.clear()

    def __repr__(self) -> str:
        return (f"Inspector({type(self.model).__name__}, device={self.device}, input_size={self.input_size}, "
                f"layers={len(self.layers)}, classes={self.num_classes})")


class _Collector:
    """Writes each batch's activations into one tensor per layer, allocated once (no list + cat copy)."""

    def __init__(self, n: int, to_cpu: bool):
        self.n, self.to_cpu = n, to_cpu
        self.result: dict[str, torch.Tensor] = {}

    def put(self, sl: slice, acts: dict, layers) -> None:
        for l in layers:
            a = acts[l]
            if l not in self.result:
                device = torch.device("cpu") if self.to_cpu else a.device
                self.result[l] = torch.empty((self.n,) + tuple(a.shape[1:]), dtype=a.dtype, device=device)
            self.result[l][sl] = a
