"""ImageOptimizer: make pictures by gradient ascent and watch them form (the optimisation half of the lecture).

Pick a mode (what a class, a unit or a whole layer wants to see; what a layer remembers of an image; a
dream; a style; a fooling image), the target (shared with the other views through ``ipynetviz.Selection``),
the parametrization (Fourier 1/f or pixels, decorrelated colour), the regularizers (robustness transforms,
centre bias, the lecture's sliders) and the step count, then run. Several pictures of one objective are
pushed apart by a diversity term; facets cluster the images that excite the objective and start one picture
from each cluster; "compare regularizers" shows the same objective under each regularizer set, labelled.
The preview redraws every few steps with a progress bar and a stop button; finished (or stopped) pictures
collect in a gallery that downloads as one PNG.
"""
from __future__ import annotations

import base64
import html
import threading

import ipywidgets as W
import numpy as np
import traitlets
from torch import nn

from ..engine import Class, Selection, Unit, as_imageset
from ..engine.errors import ModelError, SettingError
from ..methods.optimize import (L2, TV, Blur, ClipNorm, Jitter, LayerNorm, LogProb, adversarial, deep_dream,
                                invert, style_transfer, visualize)
from ..methods.units import input_pictures
from ..render import tile, to_hwc_uint8, to_png
from .base import ClickImage, View, dropdown, guarded, hold_models, link_selection, spatial_layers
from .image_optimizer_options import FeatureVisOptions

MODES = ["class", "unit", "layer", "invert", "dream", "style", "adversarial"]
NEEDS_IMAGE = {"invert", "dream", "style", "adversarial"}
PREVIEW = 192  # preview size in screen pixels
PREVIEW_COLUMN = 3 * PREVIEW + 12  # a row of pictures (diversity, facets, compared settings) fits the column


class ImageOptimizer(View):
    """Class / unit / layer visualisation, inversion, DeepDream, style transfer and fooling images, live.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        images: images for the modes that start from one (invert, dream, style, adversarial); optional.
        mode: one of ``"class", "unit", "layer", "invert", "dream", "style", "adversarial"``.
        selection: the shared :class:`ipynetviz.Selection` (default: a new one); shares layer, channel,
            image index and class, so picking a unit elsewhere sets it here.
        steps: gradient steps of a run.
        synchronous: run in the caller's thread (scripts and tests) instead of a background worker.

    Traits: ``mode``, ``layer``, ``channel``, ``target`` (class; None: untargeted attack / predicted),
    ``image_index``, ``style_index``, ``score`` ("logit" or "probability"), ``steps``, ``lr``, ``l2``, ``tv``,
    ``blur``, ``jitter``, ``clip``, ``eps`` (in grey levels of 255), ``param`` ("fourier" or "pixels"),
    ``colour`` (decorrelated colour from the images), ``transforms`` (Lucid's robustness set, on by default),
    ``center_bias``, ``pictures`` (> 1: a diversity batch), ``facets`` (> 0: multifaceted, needs images),
    ``compare`` (each regularizer set side by side), ``running``, ``steps_done``, ``gallery_size``,
    ``pictures_shown`` (pictures in the preview) and ``last`` (what the last finished run was).
    """

    mode = traitlets.Unicode("class")
    layer = traitlets.Unicode()
    channel = traitlets.Int(0)
    target = traitlets.Int(None, allow_none=True)
    image_index = traitlets.Int(0)
    style_index = traitlets.Int(1)
    score = traitlets.Unicode("logit")
    steps = traitlets.Int(64)
    lr = traitlets.Float(0.05)
    l2 = traitlets.Float(0.0)
    tv = traitlets.Float(0.0)
    blur = traitlets.Float(0.0)
    jitter = traitlets.Int(0)
    clip = traitlets.Float(0.0)
    eps = traitlets.Float(8.0)
    param = traitlets.Unicode("fourier")
    colour = traitlets.Bool(False)
    transforms = traitlets.Bool(True)
    center_bias = traitlets.Bool(False)
    pictures = traitlets.Int(1)
    facets = traitlets.Int(0)
    compare = traitlets.Bool(False)
    pictures_shown = traitlets.Int(0)
    running = traitlets.Bool(False)
    steps_done = traitlets.Int(0)
    gallery_size = traitlets.Int(0)
    last = traitlets.Dict({})

    def __init__(self, insp, images=None, mode: str = "class", selection: Selection | None = None, steps: int = 64,
                 synchronous: bool = False, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-optimizer", **kw)
        self.insp = insp
        self.images = None if images is None else as_imageset(images)
        self.layers = spatial_layers(insp)
        if not self.layers:
            raise ModelError("the model has no layer with a spatial (C, H, W) output to optimise")
        modes = [m for m in MODES if self.images is not None or m not in NEEDS_IMAGE]
        if mode not in modes:
            raise SettingError(f"mode must be one of {modes}, got {mode!r}" +
                             ("" if self.images is not None else " (image modes need images=...)"))
        self.gallery: list[tuple[np.ndarray, str]] = []
        self.result = None
        self._stop = threading.Event()
        self.class_names = insp.class_names or [str(i) for i in range(insp.num_classes or 0)]
        start = self.selection.layer if self.selection.layer in self.layers else \
            (insp.conv_layers[-1] if insp.conv_layers else self.layers[-1])
        self.fv = FeatureVisOptions(insp, self.images)
        self._build_controls(modes, mode, start, steps)
        self._build_pictures()
        sliders = self.sliders
        self.body.children = [
            self.mode_picker,
            W.HBox([self.layer_picker, self.channel_picker, self.class_picker, self.score_picker]),
            W.HBox([self.image_picker, self.style_picker, self.steps_box]),
            W.HBox([sliders["lr"], sliders["l2"], sliders["tv"]]),
            W.HBox([sliders["blur"], sliders["jitter"], sliders["clip"], sliders["eps"]]),
            self.fv.box,
            W.HBox([self.run_button, self.stop_button, self.progress]),
            # the preview column keeps one width (one picture or a row of several), so the gallery beside it
            # stays put instead of moving from x=194 to x=380 with the caption's width
            W.HBox([W.VBox([W.HTML("<b>preview</b>"), self.preview, self.preview_info],
                           layout=W.Layout(width=f"{PREVIEW_COLUMN}px", min_width=f"{PREVIEW_COLUMN}px")),
                    W.VBox([W.HTML("<b>gallery</b>"), self.gallery_view, self.gallery_captions, self.save_link])]),
            self.fv.clusters,
        ]
        self._wire()
        self._show_controls()
        self._blank_preview()

    # ------------------------------------------------------------ parts
    def _build_controls(self, modes: list[str], mode: str, start: str, steps: int) -> None:
        """The mode buttons, the target pickers, the step count, one slider per setting, run / stop / progress."""
        self.mode_picker = W.ToggleButtons(options=modes, value=mode, style={"button_width": "88px"})
        self.mode_picker.add_class("t-optimizer-mode")
        self.layer_picker = dropdown(self.layers, start, "layer", "t-optimizer-layer")
        self.channel_picker = W.BoundedIntText(value=0, min=0, max=self._channels(start) - 1, description="unit",
                                               layout=W.Layout(width="130px"))
        self.channel_picker.add_class("t-optimizer-channel")
        first = self.class_names[0] if self.class_names else "the first class"
        # names, not numbers: what "none" does in each mode, said with the class it falls back to
        classes = [(f"none (attack: untargeted; picture: {first})", -1)] + [(f"{i}: {c}", i)
                                                                         for i, c in enumerate(self.class_names)]
        self.class_picker = dropdown(classes, -1, "class", "t-optimizer-class")
        self.score_picker = dropdown([("logit", "logit"), ("log-probability", "probability")], "logit", "score",
                                     "t-optimizer-score")
        n_img = len(self.images) if self.images is not None else 1
        self.image_picker = W.BoundedIntText(value=0, min=0, max=n_img - 1, description="image",
                                             layout=W.Layout(width="130px"))
        self.image_picker.add_class("t-optimizer-image")
        self.style_picker = W.BoundedIntText(value=min(1, n_img - 1), min=0, max=n_img - 1,
                                             description="style image", style={"description_width": "initial"},
                                             layout=W.Layout(width="160px"))
        self.style_picker.add_class("t-optimizer-style-image")
        self.steps_box = W.BoundedIntText(value=steps, min=1, max=100000, description="steps",
                                          layout=W.Layout(width="150px"))
        self.steps_box.add_class("t-optimizer-steps")
        sliders = {}
        for name, lo, hi, step, desc in (("lr", 0.005, 0.3, 0.005, "step size"), ("l2", 0.0, 0.01, 1e-4, "L2 decay"),
                                         ("tv", 0.0, 1.0, 0.005, "total variation"),
                                         ("blur", 0.0, 2.0, 0.1, "blur sigma"), ("clip", 0.0, 50.0, 1.0, "clip norm %"),
                                         ("eps", 1.0, 64.0, 1.0, "eps (/255)")):
            s = W.FloatSlider(value=getattr(self, name), min=lo, max=hi, step=step, description=desc,
                              readout_format=".4g", style={"description_width": "initial"})
            s.add_class(f"t-optimizer-{name}")
            sliders[name] = s
        sliders["jitter"] = W.IntSlider(value=0, min=0, max=8, description="jitter (px)",
                                        style={"description_width": "initial"})
        sliders["jitter"].add_class("t-optimizer-jitter")
        self.sliders = sliders
        self.run_button = W.Button(description="run", button_style="primary", icon="play")
        self.run_button.add_class("t-optimizer-run")
        self.stop_button = W.Button(description="stop", button_style="warning", icon="stop", disabled=True)
        self.stop_button.add_class("t-optimizer-stop")
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="220px"))
        self.progress.add_class("t-optimizer-progress")

    def _build_pictures(self) -> None:
        """The live preview and the gallery of finished runs (with its PNG download link)."""
        self.preview = ClickImage(css_class="t-optimizer-preview")
        self.preview.scale = PREVIEW / max(self.insp.input_size[-2:]) if self.insp.input_size else 3
        self.preview_info = W.HTML("")
        self.preview_info.add_class("t-optimizer-info")
        self.gallery_view = ClickImage(css_class="t-optimizer-gallery")
        self.gallery_captions = W.HTML("")
        self.gallery_captions.add_class("t-optimizer-captions")
        self.save_link = W.HTML("")
        self.save_link.add_class("t-optimizer-save")

    def _wire(self) -> None:
        """Link the controls to the traits, the buttons to run / stop, and the shared selection."""
        for name, widget in (("mode", self.mode_picker), ("layer", self.layer_picker),
                             ("channel", self.channel_picker), ("score", self.score_picker),
                             ("image_index", self.image_picker), ("style_index", self.style_picker),
                             ("steps", self.steps_box), *self.sliders.items(), *self.fv.widgets().items()):
            W.link((widget, "value"), (self, name))
        W.link((self.class_picker, "value"), (self, "target"),
               transform=(lambda v: None if v == -1 else v, lambda v: -1 if v is None else v))
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.observe(self._on_layer, names="layer")
        self.observe(self._show_controls, names="mode")
        link_selection(self, ("layer", "channel", "image_index", "target"))
        if self.selection.channel is not None and self.selection.layer == self.layer:
            self.accept_channel(self.selection.channel)
        if self.selection.target is not None:
            self.accept_target(self.selection.target)
        self.accept_image_index(self.selection.image_index)

    # ------------------------------------------------------------ selection in
    def accept_channel(self, channel: int) -> None:
        """Follow a channel chosen elsewhere, whichever layer it was chosen on (unlike the other views)."""
        if 0 <= channel < self._channels(self.layer):
            self.channel = int(channel)

    def accept_target(self, target: int) -> None:
        if 0 <= target < len(self.class_names):
            self.target = int(target)

    @guarded
    def _on_layer(self, change) -> None:
        self.channel_picker.max = self._channels(self.layer) - 1
        if self.channel > self.channel_picker.max:
            self.channel = 0

    def _show_controls(self, change=None) -> None:
        """Show only the controls the mode uses."""
        m = self.mode
        used = {"layer_picker": m in ("unit", "layer", "invert", "dream", "style"), "channel_picker": m == "unit",
                "class_picker": m in ("class", "adversarial"), "score_picker": m == "class",
                "image_picker": m in NEEDS_IMAGE, "style_picker": m == "style"}
        for name, on in used.items():
            getattr(self, name).layout.display = None if on else "none"
        regs = m in ("class", "unit", "layer")
        for name, on in (("l2", regs), ("blur", regs), ("clip", regs), ("tv", m in ("class", "unit", "layer",
                         "invert", "style")), ("jitter", m in ("class", "unit", "layer", "invert", "dream")),
                         ("lr", m != "adversarial"), ("eps", m == "adversarial")):
            self.sliders[name].layout.display = None if on else "none"
        self.fv.box.layout.display = None if regs else "none"
        self.fv.facets.layout.display = None if m in ("class", "unit") and self.images is not None else "none"

    # ------------------------------------------------------------ running
    def regularizers(self) -> list:
        """The regularizers the sliders describe."""
        regs = []
        if self.l2 > 0:
            regs.append(self.l2 * L2())
        if self.tv > 0:
            regs.append(TV(self.tv))
        if self.blur > 0:
            regs.append(Blur(self.blur, every=4))
        if self.jitter > 0:
            regs.append(Jitter(self.jitter))
        if self.clip > 0:
            regs.append(ClipNorm(self.clip))
        return regs

    def _image(self, index: int):
        return self.images.raw([index])

    def _style_layers(self) -> list[str]:
        relus = [n for n in self.layers if isinstance(self.insp.module(n), nn.ReLU)] or self.insp.conv_layers
        upto = self.layers.index(self.layer)
        chosen = [n for n in relus if self.layers.index(n) <= upto]
        return chosen[:3] or relus[:1]

    def _job(self):
        """The method call this mode and these settings stand for, as ``fn(callback, cancel) -> result``."""
        insp, m, steps = self.insp, self.mode, self.steps
        every = max(1, min(8, steps // 16))  # a fresh preview every few steps
        lr, layer, target = self.lr, self.layer, self.target
        if m in ("class", "unit", "layer"):
            if m == "class":
                k = 0 if target is None else target
                objective = LogProb(k) if self.score == "probability" else Class(k)
            else:
                objective = Unit(layer, self.channel) if m == "unit" else LayerNorm(layer)
            target = Class(0 if target is None else target) if m == "class" else Unit(layer, self.channel)
            s = {"param": self.param, "colour": self.colour, "transforms": self.transforms,
                 "center_bias": self.center_bias, "pictures": self.pictures,
                 "facets": self.facets if m != "layer" else 0, "compare": self.compare,
                 "sliders": self.regularizers()}
            return self.fv.job(objective, target, None if m == "class" else layer, s, steps, lr, every)
        image = self._image(self.image_index)
        if m == "invert":
            tv, regs = self.tv, [Jitter(self.jitter)] if self.jitter else []
            return lambda cb, cancel: invert(insp, image, layer, steps=steps, lr=lr, tv=tv, regularizers=regs,
                                             callback=cb, callback_every=every, cancel=cancel)
        if m == "dream":
            per_octave = max(1, steps // 3)
            jitter = self.jitter
            return lambda cb, cancel: deep_dream(insp, image, layer, octaves=3, steps=per_octave, lr=lr,
                                                 jitter=jitter, callback=cb, callback_every=every,
                                                 cancel=cancel)
        if m == "style":
            style, tv, style_layers = self._image(self.style_index), self.tv, self._style_layers()
            return lambda cb, cancel: style_transfer(insp, image, style, layer, style_layers, steps=steps, lr=lr,
                                                     tv=tv, callback=cb, callback_every=every, cancel=cancel)
        eps = self.eps / 255
        return lambda cb, cancel: adversarial(insp, image, target=target, eps=eps, steps=steps, callback=cb,
                                              callback_every=every, cancel=cancel)

    def _total_steps(self) -> int:
        return 3 * max(1, self.steps // 3) if self.mode == "dream" else self.steps

    @guarded
    def run(self) -> None:
        """Start a run with the current settings (a running one is superseded)."""
        self._stop = stop = threading.Event()
        call = self._job()
        settings = {"mode": self.mode, "steps": self._total_steps(), "layer": self.layer, "channel": self.channel,
                    "target": self.target, "image_index": self.image_index}
        self.progress.max, self.progress.value = max(1, settings["steps"]), 0
        self.steps_done = 0
        self.running = True
        self.run_button.disabled, self.stop_button.disabled = True, False

        def job(ticket):
            try:
                with hold_models(self.insp):
                    ticket.check()
                    return call(lambda r: ticket.emit(r), lambda: stop.is_set() or ticket.superseded)
            except BaseException:
                if not ticket.superseded:  # the error is shown by submit; the buttons must work again
                    self._idle()
                raise
        self.submit(job, on_result=lambda r: self._finish(r, settings), on_partial=self._show_partial,
                    busy=f"optimising: {settings['mode']}")

    def stop(self) -> None:
        """Stop the running optimisation; its picture so far goes to the gallery."""
        self._stop.set()

    def _show_partial(self, result) -> None:
        self.result = result
        self._show_preview(result)  # picture first: whoever sees the new step count also sees its picture
        self.steps_done = int(result.steps_done)
        self.progress.value = min(self.progress.max, self.steps_done)

    def _picture(self, result) -> np.ndarray:
        """The run's pictures in one row (uint8 (H, W, 3)); a single picture as it is."""
        if len(result.images) == 1:
            return to_hwc_uint8(result.images[0])
        return tile(result.images, ncols=min(8, len(result.images)), pad=1)[0]

    def _show_preview(self, result) -> None:
        picture = self._picture(result)
        self.preview.scale = max(1.0, PREVIEW * (1 if len(result.images) == 1 else 3) / max(picture.shape[:2]))
        self.preview.set_image(picture)
        self.pictures_shown = len(result.images)
        text = self._describe(result)
        if len(result.images) > 1 and hasattr(result, "descriptions"):
            labels = "".join(f"<li>{html.escape(d)}</li>" for d in result.descriptions)
            self.preview_info.value = html.escape(text) + f"<ol style='font-size:11px;margin:0'>{labels}</ol>"
        else:
            self.preview_info.value = html.escape(text)

    def _describe(self, result) -> str:
        text = f"{self.mode}: step {result.steps_done}"
        if hasattr(result, "descriptions"):
            text += f" — {result.descriptions[0]}"
        series = getattr(result, "objective", None)
        if series is not None and len(series) and not hasattr(result, "relative_error"):
            text += f", objective {float(series[-1, 0]):.3g} (start {float(series[0, 0]):.3g})"
        if hasattr(result, "relative_error"):
            text += f", code error {float(np.ravel(result.relative_error)[0]):.3f}"
        if hasattr(result, "fooled"):
            k = int(result.adv_pred[0])
            name = self.class_names[k] if k < len(self.class_names) else str(k)
            text += f", predicted {name} ({'fooled' if result.fooled[0] else 'not fooled'}), " \
                    f"L-inf {255 * float(result.linf[0]):.1f}/255"
        return text

    def _idle(self) -> None:
        self.running = False
        self.run_button.disabled, self.stop_button.disabled = False, True

    def _finish(self, result, settings: dict) -> None:
        self._idle()
        self.result = result
        self._show_preview(result)
        self.steps_done = int(result.steps_done)
        self.progress.value = min(self.progress.max, self.steps_done)
        caption = self._describe(result) + (" (stopped)" if result.interrupted else "")
        for i, image in enumerate(result.images):  # one gallery entry per picture, so sizes match
            text = caption if len(result.images) == 1 else f"{caption} [{result.descriptions[i]}]"
            self.gallery.append((to_hwc_uint8(image), text))
        self.fv.show_clusters(result)
        self._draw_gallery()
        self.last = dict(settings, steps_done=self.steps_done, interrupted=bool(result.interrupted),
                         caption=caption)

    # ------------------------------------------------------------ gallery
    def gallery_picture(self) -> np.ndarray:
        """All gallery pictures in one uint8 (H, W, 3) mosaic, 8 per row."""
        if not self.gallery:
            return np.full((8, 8, 3), 255, np.uint8)
        return tile([p for p, _ in self.gallery], ncols=8, pad=2)[0]

    def save_gallery(self, path) -> None:
        """Write the gallery mosaic as a PNG file."""
        with open(path, "wb") as f:
            f.write(to_png(self.gallery_picture()))

    def clear_gallery(self) -> None:
        self.gallery.clear()
        self._draw_gallery()

    def _draw_gallery(self) -> None:
        self.gallery_size = len(self.gallery)
        picture = self.gallery_picture()
        size = max(p.shape[0] for p, _ in self.gallery) if self.gallery else 8
        self.gallery_view.scale = max(1.0, 64 / size)
        self.gallery_view.set_image(picture)
        self.gallery_captions.value = "<ol style='font-size:11px;margin:0'>" + "".join(
            f"<li>{html.escape(c)}</li>" for _, c in self.gallery) + "</ol>"
        if self.gallery:
            data = base64.b64encode(to_png(picture)).decode("ascii")
            self.save_link.value = (f'<a download="ipynetviz-gallery.png" href="data:image/png;base64,{data}">'
                                    f"save gallery as PNG ({len(self.gallery)})</a>")
        else:
            self.save_link.value = ""

    def _blank_preview(self) -> None:
        size = tuple(self.insp.input_size[-2:]) if self.insp.input_size else (32, 32)
        if self.images is not None and self.mode in NEEDS_IMAGE:
            self.preview.set_image(to_hwc_uint8(input_pictures(self.insp, self.images, [self.image_index])[0]))
        else:
            self.preview.set_image(np.full(size + (3,), 255, np.uint8))
        self._draw_gallery()
