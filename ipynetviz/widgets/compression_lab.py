"""The Compression lab: per-layer sparsity and bits, live test accuracy and real file size, Deep Compression's
pictures (weight histogram with centroids, sparsity pattern, index gaps), the size table, a real saved file, conv1
filters before and after, trained quantization with moving centroids, and DSD's five histograms."""
from __future__ import annotations

import copy
import html
import os
import threading

import ipywidgets as W
import numpy as np
import torch
import traitlets

from ..engine import Inspector, Selection
from ..methods import compression as C
from ..methods.compression.encode import Encoded, encode_layer, relative_indices
from ..methods.compression.kmeans import kmeans_1d
from ..methods.compression.layers import DEFAULT_INDEX_BITS, check_sparsity, kind_of
from ..methods.compression.prune import _keep_largest
from ..methods.compression.table import PAPER, size_table
from .base import View, dropdown, guarded, link_selection
from .compression_actions import TrainingActions, png as _png
from .compression_parts import gap_histogram, sparsity_pattern, weight_histogram
from .filter_grid import FilterGrid

BITS_CHOICES = [("32 (no sharing)", 0)] + [(str(b), b) for b in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)]


def compress_layer(weight: torch.Tensor, sparsity: float, bits: int) -> tuple[torch.Tensor, np.ndarray]:
    """One layer as the lab shows it: magnitude-pruned to ``sparsity``, then (bits > 0) shared by linear-init k-means.

    Returns the new weight (float32, CPU) and its nonzero shared values (empty without sharing).
    """
    w = weight.detach().cpu().float()
    mask, _ = _keep_largest(w, sparsity)
    pruned = w * mask
    if not bits or not bool(mask.any()):
        return pruned, np.zeros(0, np.float32)
    fit = kmeans_1d(w[mask].numpy(), 2 ** bits - 1, init="linear", max_iter=300)
    centroids = fit.centroids.astype(np.float32)
    out = torch.zeros_like(w)
    out[mask] = torch.from_numpy(centroids[fit.labels])
    return out, centroids


def _table_html(table, paper: str | None) -> str:
    cols = ["layer", "weights", "kept %", "weight bits P+Q", "P+Q+H", "index bits P+Q", "P+Q+H", "rate P %",
            "rate P+Q %", "rate P+Q+H %"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for r in table.rows + (table.total,):
        cells = [r[0], f"{r[1]:,}", f"{r[2]:.1f}", f"{r[3]:.1f}", f"{r[4]:.2f}", f"{r[5]:.1f}", f"{r[6]:.2f}",
                 f"{r[7]:.2f}", f"{r[8]:.2f}", f"{r[9]:.2f}"]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    for r in PAPER.get(paper, ()):
        cells = [f"paper {r[0]}", r[1], r[2], r[3], r[4], r[5], r[6], "", r[7], r[8]]
        rows.append('<tr style="color:#777">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="ipynetviz-table" style="font-size:12px;border-collapse:collapse"><tr>{head}</tr>'
            + "".join(rows) + "</table>")


class CompressionLab(View, TrainingActions):
    """Prune and share weights layer by layer and watch accuracy and the real compressed size change.

    Args:
        insp: an Inspector over a trained model (it is never changed: the lab works on a copy).
        data: ``(images, labels)`` of a test set (the accuracy shown).
        train_data: ``(images, labels)`` for fine-tuning the centroids (None: no fine-tune button).
        paper: ``"lenet-300-100"`` or ``"lenet-5"`` to show the paper's table rows beside ours.
        sparsity, bits: starting ``{layer: value}`` (bits 0: no weight sharing).
        selection: the shared :class:`ipynetviz.Selection` (the shown layer follows it).
        synchronous: compute in the caller's thread (scripts and tests).

    Traits: ``sparsity`` and ``bits`` (dicts per layer), ``layer`` (whose pictures are shown), ``accuracy``,
    ``file_bytes``, ``ratio`` (dense bytes / file bytes of exactly what "Save compressed" writes).

    Example:
        >>> lab = CompressionLab(zoo.load("lenet-300-100"), zoo.mnist("test"))   # doctest: +SKIP
        >>> lab.set_sparsity("fc1", 0.9); lab.wait(); lab.accuracy               # doctest: +SKIP
    """

    sparsity = traitlets.Dict()
    bits = traitlets.Dict()
    layer = traitlets.Unicode()
    accuracy = traitlets.Float(float("nan"))
    file_bytes = traitlets.Int(0)
    ratio = traitlets.Float(float("nan"))

    def __init__(self, insp: Inspector, data, train_data=None, paper: str | None = None, sparsity=None, bits=None,
                 selection: Selection | None = None, synchronous: bool = False, path: str = "compressed.ipnz", **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-compression", **kw)
        self.insp = insp
        self.paper = paper
        self.train_data = train_data
        self.work = Inspector(copy.deepcopy(insp.model), transform=insp.transform, device=insp.device,
                              class_names=insp.class_names, input_size=insp.input_size)
        self.modules = C.compressible_layers(self.work.model)
        self.layers = list(self.modules)
        self.dense_weights = {n: m.weight.detach().cpu().float().clone() for n, m in self.modules.items()}
        images, labels = data
        self.test_data = (images, labels)
        self.probe = C.AccuracyProbe(self.work, images, labels)
        self.dense_accuracy = self.probe.accuracy()
        self._cache: dict = {}
        self._committed = {n: (0.0, 0) for n in self.layers}
        self._codes: dict[str, C.LayerCode] = {}
        self._lock = threading.Lock()
        self.run = None
        self.last_saved = None
        self.pictures: dict[str, np.ndarray] = {}

        start_s = {n: float((sparsity or {}).get(n, 0.0)) for n in self.layers}
        start_b = {n: int((bits or {}).get(n, 0)) for n in self.layers}
        self.sliders, self.bit_pickers = {}, {}
        rows = []
        for n in self.layers:
            s = W.FloatSlider(value=start_s[n], min=0.0, max=0.99, step=0.01, description=n, readout_format=".2f",
                              continuous_update=False, layout={"width": "330px"})
            s.add_class(f"t-compression-sparsity-{n}")
            b = W.Dropdown(options=BITS_CHOICES, value=start_b[n], description="bits", layout={"width": "190px"})
            b.add_class(f"t-compression-bits-{n}")
            s.observe(lambda ch, n=n: self.set_sparsity(n, ch["new"]), names="value")
            b.observe(lambda ch, n=n: self.set_bits(n, ch["new"]), names="value")
            self.sliders[n], self.bit_pickers[n] = s, b
            rows.append(W.HBox([s, b]))
        self.accuracy_text = W.HTML("")
        self.accuracy_text.add_class("t-compression-accuracy")
        self.rate_text = W.HTML("")
        self.rate_text.add_class("t-compression-rate")
        self.layer_picker = dropdown(self.layers, self.layers[0], "layer", "t-compression-layer")
        W.link((self.layer_picker, "value"), (self, "layer"))
        self.histogram = W.Image(format="png")
        self.histogram.add_class("t-compression-histogram")
        self.pattern = W.Image(format="png")
        self.pattern.add_class("t-compression-pattern")
        self.gaps = W.Image(format="png")
        self.gaps.add_class("t-compression-gaps")
        self.picture_info = W.HTML("")
        self.picture_info.add_class("t-compression-picture-info")
        self.table = W.HTML("")
        self.table.add_class("t-compression-table")
        self.path_text = W.Text(value=path, description="file", layout={"width": "330px"})
        self.path_text.add_class("t-compression-path")
        self.save_button = W.Button(description="Save compressed", icon="save")
        self.save_button.add_class("t-compression-save")
        self.save_button.on_click(lambda _: self.save())
        self.saved_text = W.HTML("")
        self.saved_text.add_class("t-compression-saved")
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout={"width": "200px"})
        self.progress.add_class("t-compression-progress")
        self.retrain_button = W.Button(description="Retrain pruned", icon="play", disabled=train_data is None)
        self.retrain_button.add_class("t-compression-retrain")
        self.retrain_button.on_click(lambda _: self.retrain_pruned())
        self.finetune_button = W.Button(description="Fine-tune centroids", icon="play",
                                        disabled=train_data is None)
        self.finetune_button.add_class("t-compression-finetune")
        self.finetune_button.on_click(lambda _: self.finetune())
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.stop_button.add_class("t-compression-stop")
        self.stop_button.on_click(lambda _: self.stop())
        self.filters_box = W.HBox([])
        if insp.conv_layers:
            self.filters_before = FilterGrid(insp, layer=insp.conv_layers[0], selection=Selection())
            self.filters_after = FilterGrid(self.work, layer=self.work.conv_layers[0], selection=Selection())
            for grid in (self.filters_before, self.filters_after):
                grid.leave_pictures_first()  # redrawn from the DSD thread
            self.filters_box.children = [W.VBox([W.HTML("<b>conv1 before</b>"), self.filters_before]),
                                         W.VBox([W.HTML("<b>conv1 after</b>"), self.filters_after])]
        else:
            self.filters_before = self.filters_after = None
        self.dsd_box = W.VBox([])
        self.dsd_box.add_class("t-compression-dsd")
        self.dsd_button = W.Button(description="Run DSD", icon="play", disabled=train_data is None)
        self.dsd_button.add_class("t-compression-dsd-run")
        self.dsd_button.on_click(lambda _: self.run_dsd())
        self._dsd_stop = threading.Event()
        self.dsd_thread: threading.Thread | None = None
        self.dsd_result = None
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.reset_button.add_class("t-compression-reset")
        self.reset_button.on_click(lambda _: self.reset())
        controls = W.VBox(rows + [W.HBox([self.retrain_button, self.finetune_button, self.stop_button]),
                                  W.HBox([self.progress, self.reset_button, self.dsd_button])])
        pictures = W.VBox([self.layer_picker, self.histogram, W.HBox([self.pattern, self.gaps]), self.picture_info])
        self.body.children = [W.HBox([self.accuracy_text, self.rate_text]), W.HBox([controls, pictures]),
                              self.table, W.HBox([self.path_text, self.save_button, self.saved_text]),
                              self.filters_box, self.dsd_box]
        self.observe(lambda _: self._update(), names=["sparsity", "bits"])
        self.observe(lambda _: self._draw_layer(), names="layer")
        link_selection(self, ("layer",))
        with self.hold_trait_notifications():
            self.layer = self.layers[0]
            self.bits = start_b
            self.sparsity = start_s

    # ------------------------------------------------------------ settings
    def accept_layer(self, layer: str) -> None:
        if layer in self.layers:
            self.layer = layer

    def set_sparsity(self, layer: str, value: float) -> None:
        """Move ``layer``'s slider (what a browser drag does)."""
        value = check_sparsity(value, f"sparsity of {layer}")
        if self.sliders[layer].value != value:
            self.sliders[layer].value = value
        if self.sparsity.get(layer) != value:
            self.sparsity = {**self.sparsity, layer: value}

    def set_bits(self, layer: str, value: int) -> None:
        value = int(value)
        if self.bit_pickers[layer].value != value:
            self.bit_pickers[layer].value = value
        if self.bits.get(layer) != value:
            self.bits = {**self.bits, layer: value}

    # ------------------------------------------------------------ the live computation
    def _layer_state(self, layer: str, s: float, b: int):
        key = (layer, round(s, 6), b)
        with self._lock:
            hit = self._cache.get(key)
        if hit is None:
            w, centroids = compress_layer(self.dense_weights[layer], s, b)
            kind = kind_of(self.modules[layer])
            if b:
                book = np.concatenate([[0.0], centroids]).astype(np.float32)
                codes = torch.from_numpy(np.searchsorted(centroids, w.numpy().ravel()).reshape(w.shape) + 1)
                codes[w == 0] = 0
                code = encode_layer(layer, w, kind, DEFAULT_INDEX_BITS[kind], codebook=book, codes=codes)
            else:
                code = encode_layer(layer, w, kind, DEFAULT_INDEX_BITS[kind])
            hit = (w, centroids, code)
            with self._lock:
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[key] = hit
        return hit

    def compute(self, sparsity: dict, bits: dict) -> dict:
        """Accuracy, file size and layer states for these settings (commits them to the lab's model copy)."""
        states = {n: self._layer_state(n, sparsity[n], bits[n]) for n in self.layers}
        changed = {n: states[n][0] for n in self.layers if self._committed[n] != (sparsity[n], bits[n])}
        acc = self.probe.accuracy(changed) if changed else self.probe.accuracy()
        if changed:
            self.probe.commit(changed)
            for n in changed:
                self._committed[n] = (sparsity[n], bits[n])
        encoded = self.encoded(states)
        nbytes = len(C.to_bytes(encoded))
        return {"accuracy": acc, "file_bytes": nbytes, "ratio": encoded.dense_bytes / nbytes, "encoded": encoded,
                "states": states}

    def encoded(self, states=None) -> Encoded:
        """The model as "Save compressed" writes it (the per-layer codes are cached)."""
        states = states or {n: self._layer_state(n, self.sparsity[n], self.bits[n]) for n in self.layers}
        state = self.work.model.state_dict()
        names = {f"{n}.weight" for n in self.layers}
        dense = {k: v.detach().cpu().numpy().copy() for k, v in state.items() if k not in names}
        arch = tuple((k, tuple(v.shape), str(v.detach().cpu().numpy().dtype)) for k, v in state.items())
        return Encoded(tuple(states[n][2] for n in self.layers), dense, arch, {"model": type(self.insp.model).__name__,
                                                                             **({"zoo": self.paper} if self.paper else {})})

    def _update(self) -> None:
        if set(self.sparsity) != set(self.layers) or set(self.bits) != set(self.layers):
            return
        sparsity, bits = dict(self.sparsity), dict(self.bits)

        def job(ticket):
            with self.work.model_lock:
                return self.compute(sparsity, bits)
        self.submit(job, self._show, busy="measuring…")

    def _show(self, out: dict) -> None:
        self.accuracy = out["accuracy"]
        self.file_bytes = out["file_bytes"]
        self.ratio = out["ratio"]
        self.last = out
        drop = 100 * (self.dense_accuracy - out["accuracy"])
        self.accuracy_text.value = (f'<b>test accuracy <span class="t-accuracy-value">{100 * out["accuracy"]:.2f}%'
                                    f'</span></b> (dense {100 * self.dense_accuracy:.2f}%, {-drop:+.2f} points)')
        self.rate_text.value = (f' &nbsp; file <span class="t-bytes-value">{out["file_bytes"]:,}</span> bytes = '
                                f'<b><span class="t-ratio-value">{out["ratio"]:.1f}</span>x</b> smaller')
        table = size_table(out["encoded"], out["file_bytes"])
        self.table.value = _table_html(table, self.paper)
        self._draw_layer()
        if self.filters_after is not None:
            self.filters_after._redraw()

    def layer_pictures(self, layer: str) -> dict[str, np.ndarray]:
        """The three pictures of ``layer`` for the current settings (what the lab shows; tests recompute them)."""
        w, centroids, code = self._layer_state(layer, self.sparsity[layer], self.bits[layer])
        limit = float(self.dense_weights[layer].abs().max())
        mask = (w != 0).numpy()
        _, diffs = relative_indices(mask.ravel(), code.index_bits)
        return {"histogram": weight_histogram(w.numpy(), limit, centroids if len(centroids) else None),
                "pattern": sparsity_pattern(mask), "gaps": gap_histogram(diffs, code.index_bits),
                "kept": float(mask.mean()), "fillers": code.n_entries - code.n_kept}

    @guarded
    def _draw_layer(self) -> None:
        if not self.layer or set(self.sparsity) != set(self.layers):
            return
        pics = self.layer_pictures(self.layer)
        self.pictures = pics
        for widget, name in ((self.histogram, "histogram"), (self.pattern, "pattern"), (self.gaps, "gaps")):
            widget.value = _png(pics[name])
        self.picture_info.value = (f"{self.layer}: {100 * pics['kept']:.1f}% kept, {pics['fillers']:,} filler zeros; "
                                   "red ticks: shared values")

    # ------------------------------------------------------------ file
    @guarded
    def save(self, path: str | None = None):
        """Write the compressed file, then read it back into a fresh copy and measure its accuracy."""
        path = path or self.path_text.value
        self.wait()
        saved = C.save_compressed(path, self.encoded())
        fresh = Inspector(copy.deepcopy(self.work.model), transform=self.insp.transform, device=self.insp.device,
                          input_size=self.insp.input_size)
        C.load_compressed(path, fresh)
        acc = C.AccuracyProbe(fresh, self.probe.x, self.probe.labels.cpu()).accuracy()
        self.last_saved = (saved, acc)
        self.saved_text.value = (f'wrote {html.escape(os.fspath(path))}: <b class="t-saved-bytes">'
                                 f'{saved.file_bytes:,}</b> bytes on disk ({saved.ratio:.1f}x); reloaded accuracy '
                                 f'<b class="t-saved-accuracy">{100 * acc:.2f}%</b>')
        return saved


__all__ = ["CompressionLab", "compress_layer"]
