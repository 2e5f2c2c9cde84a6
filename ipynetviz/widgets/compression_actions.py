"""The Compression lab's long actions: retrain with masks fixed, fine-tune the shared values, DSD, reset.

A mixin of :class:`~ipynetviz.widgets.compression_lab.CompressionLab` (it uses the lab's model copy, probe,
caches and controls); every action goes through the project's one training loop, with progress and Stop.
"""
from __future__ import annotations

import copy
import html
import threading

import bqplot as bq
import ipywidgets as W
import numpy as np
import torch

from ..engine.errors import SettingError
from ..methods import compression as C
from ..methods.compression.encode import encode_layer
from ..methods.compression.layers import DEFAULT_INDEX_BITS, kind_of
from ..methods.compression.pipeline import batch_transform
from ..methods.compression.quantize import QuantizeResult
from ..render import to_png
from .base import guarded
from .compression_parts import bars, weight_histogram


class TrainingActions:
    """Retrain, fine-tune, DSD and reset for the lab (see the module docstring)."""

    def quantization(self) -> QuantizeResult:
        """The current shared weights as a :class:`QuantizeResult` (layers with bits > 0)."""
        books, codes, bits = {}, {}, {}
        for n in self.layers:
            if self.bits[n]:
                w, centroids, code = self._layer_state(n, self.sparsity[n], self.bits[n])
                books[n] = code.codebook
                codes[n] = torch.from_numpy(np.searchsorted(code.codebook[1:], w.numpy()) + 1).reshape(w.shape)
                codes[n][w == 0] = 0
                bits[n] = self.bits[n]
        return QuantizeResult(books, codes, bits, {}, "linear")

    @guarded
    def retrain_pruned(self, epochs: int = 1, lr: float = 1e-4, background: bool | None = None):
        """Retrain the pruned model with its masks fixed (shared values are dropped, then found again by k-means)."""
        masks = {n: self._layer_state(n, self.sparsity[n], 0)[0] != 0 for n in self.layers}
        self.wait()
        self.probe.commit({n: self._layer_state(n, self.sparsity[n], 0)[0] for n in self.layers})
        self._committed = {n: None for n in self.layers}
        return self._train("retrain", dict(masks=masks), epochs, lr, background)

    @guarded
    def finetune(self, epochs: int = 1, lr: float = 1e-4, background: bool | None = None):
        """Fine-tune the shared values with the summed gradients (the paper's eq. 3); the red ticks move."""
        q = self.quantization()
        if not q.codes:
            raise SettingError("no layer shares weights; pick bits for a layer first")
        return self._train("finetune", dict(quantization=q), epochs, lr, background)

    def _train(self, kind: str, settings: dict, epochs: int, lr: float, background: bool | None):
        if self.train_data is None:
            raise SettingError("no train_data given to the lab; pass CompressionLab(insp, test, train_data=...)")
        if self.run is not None and not self.run.done:
            raise SettingError("a retraining run is still going; press Stop or wait for it")
        self.wait()
        self.progress.value = 0.0
        self.retrain_button.disabled = self.finetune_button.disabled = True
        self.stop_button.disabled = False

        def on_progress(run):
            with self.error.capture():
                self.progress.value = run.progress
                centroids = getattr(run, "centroids", None)
                if centroids is not None and self.layer in centroids.books:
                    w = self.work.model.get_submodule(self.layer).weight.detach().cpu()
                    limit = float(self.dense_weights[self.layer].abs().max())
                    books = centroids.codebooks()
                    self.histogram.value = png(weight_histogram(w.numpy(), limit, books[self.layer][1:]))
                if run.done or run.state in ("finished", "stopped", "diverged", "failed"):
                    self._after_training(kind, run)
        self.run = C.retrain(self.work.model, self.train_data, epochs=epochs, lr=lr, optimizer="adam",
                             transform=batch_transform(self.insp), callback=on_progress, callback_every=5,
                             background=not self.executor.synchronous if background is None else background,
                             **settings)
        return self.run

    def _after_training(self, kind: str, run) -> None:
        self.retrain_button.disabled = self.finetune_button.disabled = self.train_data is None
        self.stop_button.disabled = True
        with self.work.model_lock:
            trained = {n: self.modules[n].weight.detach().cpu().clone() for n in self.layers}
        with self._lock:
            if kind == "retrain":  # the retrained weights are what the sliders prune and share from now on
                self.dense_weights = trained
                self._cache.clear()
            else:
                tuned = run.centroids.result()
                for n in tuned.codes:
                    kind_ = kind_of(self.modules[n])
                    code = encode_layer(n, trained[n], kind_, DEFAULT_INDEX_BITS[kind_], codebook=tuned.codebooks[n],
                                        codes=tuned.codes[n])
                    self._cache[(n, round(self.sparsity[n], 6), self.bits[n])] = (trained[n], tuned.codebooks[n][1:],
                                                                                    code)
        self._committed = {n: None for n in self.layers}
        self.probe.commit(trained)
        self._update()

    def reset(self) -> None:
        """Back to the original model's weights (forget retraining and fine-tuning)."""
        self.wait()
        with self._lock:
            self.dense_weights = {n: m.weight.detach().cpu().float().clone()
                                  for n, m in C.compressible_layers(self.insp.model).items()}
            self._cache.clear()
        self._committed = {n: None for n in self.layers}
        self._update()

    def stop(self) -> None:
        """Stop retraining, fine-tuning or DSD at the next step (what was learned so far stays)."""
        if self.run is not None:
            self.run.stop()
        self._dsd_stop.set()

    @guarded
    def run_dsd(self, epochs: int = 2, sparsity: float = 0.3, seeds=(0,), background: bool | None = None):
        """Train a fresh copy of the architecture dense-sparse-dense (and its dense baseline); then ``show_dsd``."""
        if self.train_data is None:
            raise SettingError("no train_data given to the lab; pass CompressionLab(insp, test, train_data=...)")
        if self.dsd_thread is not None and self.dsd_thread.is_alive():
            raise SettingError("DSD is already running; press Stop or wait for it")
        template = copy.deepcopy(self.insp.model).cpu()

        def fresh():  # the same architecture, newly initialised (train() seeds torch before calling this)
            model = copy.deepcopy(template)
            for m in model.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            return model
        self._dsd_stop.clear()
        self.dsd_button.disabled, self.stop_button.disabled = True, False
        test = self.test_data
        runs = {"n": 0}

        def progress(done, total):
            if done == 1:
                runs["n"] += 1
            self.progress.value = min(1.0, ((runs["n"] - 1) + done / max(total, 1)) / (5 * len(seeds)))

        def work():
            with self.error.capture():
                try:
                    result = C.dsd(fresh, self.train_data, test, sparsity=sparsity, epochs=epochs, seeds=seeds,
                                   transform=batch_transform(self.insp), cancel=self._dsd_stop, progress=progress,
                                   device="cpu")
                    self.dsd_result = result
                    if result.histograms:
                        self.show_dsd(result)
                finally:
                    self.dsd_button.disabled, self.stop_button.disabled = self.train_data is None, True
        if background if background is not None else not self.executor.synchronous:
            self.dsd_thread = threading.Thread(target=work, name="ipynetviz-dsd", daemon=True)
            self.dsd_thread.start()
        else:
            work()
        return self.dsd_thread

    # ------------------------------------------------------------ DSD
    def show_dsd(self, result) -> None:
        """Draw a :class:`~ipynetviz.methods.compression.DSDResult`: the five histograms and the accuracy curves."""
        pics = []
        for label, counts, _ in result.histograms:
            img = W.Image(value=png(_bars_for(counts)), format="png")
            img.add_class("t-compression-dsd-histogram")
            pics.append(W.VBox([W.HTML(f"<small>{html.escape(label)}</small>"), img]))
        xs, ys = bq.LinearScale(), bq.LinearScale()
        marks = []
        for name, color in (("dsd", "#d62728"), ("baseline", "#1f77b4")):
            if name in result.curves:
                x, y = result.curves[name]
                marks.append(bq.Lines(x=x, y=y, scales={"x": xs, "y": ys}, colors=[color], labels=[name],
                                      display_legend=True))
        fig = bq.Figure(marks=marks, axes=[bq.Axis(scale=xs, label="epoch"),
                                           bq.Axis(scale=ys, side="left", label="test accuracy",
                                                   tick_format=".3f")],
                        title="DSD vs equal-epoch dense", layout={"width": "420px", "height": "260px"})
        fig.add_class("t-compression-dsd-curve")
        summary = ", ".join(f"{k} {100 * m:.2f} ± {100 * sd:.2f}%" for k, (m, sd) in result.summary().items())
        text = W.HTML(f'<span class="t-compression-dsd-summary">{html.escape(summary)}</span>')
        self.dsd_box.children = [W.HBox(pics), W.HBox([fig, text])]


def _bars_for(counts) -> np.ndarray:
    return bars(np.asarray(counts), height=90, width=2 * len(counts))


def png(img: np.ndarray) -> bytes:
    """A picture as PNG bytes (what the lab's ``W.Image`` widgets show)."""
    return to_png(img)


__all__ = ["TrainingActions", "png"]
