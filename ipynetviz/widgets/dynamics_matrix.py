"""DynamicsMatrix: how close every layer is to its final self at every checkpoint (Raghu et al. 2017, Fig. 4).

A thin view over :func:`ipynetviz.methods.dynamics.learning_dynamics`. The matrix is layers (rows, bottom layer at
the bottom) by checkpoints (columns); while a run trains, the view recomputes whenever a new checkpoint appears
(the reference is then the latest checkpoint so far). A slider over checkpoints shows the layer x layer grid at
that time; a click on a matrix cell shows that layer's top SVCCA directions at that checkpoint beside the final
network's, as curves over the probe images sorted by class (the SVCCA blog's aligned directions).

The slider only reads the computed result (no work, so nothing stale can arrive late); a click starts work on
its own latest-wins worker, so a newer click replaces an older one and only the newest is drawn.
"""
from __future__ import annotations

import threading

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets

from ..engine import LatestExecutor
from ..engine.control import Stop
from ..methods.dynamics import (METHODS, canonical_directions, checkpoint_states, default_layers, layer_codes,
                                learning_dynamics)
from ..methods.dynamics.learning import probe_tensor
from .base import View, guarded

_COLORS = ["#1f77b4", "#ff7f0e"]


def _heatmap(rows, cols, title, xlabel, ylabel, width="420px"):
    mark = bq.GridHeatMap(color=np.full((len(rows), len(cols)), np.nan), row=np.array(rows), column=np.array(cols),
                          display_format=".2f", font_style={"font-size": "10px", "fill": "white"},
                          scales={"row": bq.OrdinalScale(), "column": bq.OrdinalScale(),
                                  "color": bq.ColorScale(min=0.0, max=1.0, scheme="viridis")})
    sc = mark.scales
    fig = bq.Figure(marks=[mark], title=title, fig_margin={"top": 40, "bottom": 50, "left": 70, "right": 10},
                    axes=[bq.Axis(scale=sc["row"], orientation="vertical", label=ylabel),
                          bq.Axis(scale=sc["column"], label=xlabel)],
                    layout=W.Layout(width=width, height="300px"))
    return mark, fig


class DynamicsMatrix(View):
    """Layer x checkpoint similarity to the final network, live while a run trains.

    Args:
        run: a training :class:`~ipynetviz.methods.training.Run` with checkpoints (running or finished), or a list
            of modules (oldest first).
        probe: probe images (uint8 through the run's transform, or float model input).
        labels: the probe images' classes (sorts the images in the directions plot; optional).
        layers: compared layers (default: each conv / linear layer after its nonlinearity).
        method: "svcca", "pwcca" or "cka".
        live: while the run trains, recompute when a new checkpoint appears (checked every ``interval`` s).
        k: SVCCA directions drawn for a clicked cell.
        selection, synchronous: as for every view.

    Traits: ``checkpoint`` (the slider: index of the checkpoint whose layer x layer grid is shown), ``method``,
    ``cell`` ((layer index, checkpoint index) clicked, or (-1, -1)), read-outs ``state`` ("idle", "computing",
    "done", "stopped") and ``computed`` (how many times a result was drawn). ``result`` is the last
    :class:`~ipynetviz.methods.dynamics.DynamicsResult`.

    Example:
        >>> view = DynamicsMatrix(run, x_test[:300], y_test[:300])   # doctest: +SKIP
    """

    checkpoint = traitlets.Int(0)
    method = traitlets.Enum(METHODS, default_value="svcca")
    cell = traitlets.Tuple(traitlets.Int(), traitlets.Int(), default_value=(-1, -1))
    state = traitlets.Unicode("idle")
    computed = traitlets.Int(0)

    def __init__(self, run, probe, labels=None, layers=None, method: str = "svcca", live: bool = True,
                 interval: float = 1.0, k: int = 2, selection=None, synchronous: bool = False):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-dynamics-matrix")
        self.run = run
        model, _, _, _, transform = checkpoint_states(run) if _count(run) >= 2 else (run.model, None, None, None,
                                                                                      run.transform)
        self.layers = list(layers) if layers is not None else default_layers(model)
        self.x = probe_tensor(probe, transform)
        self.labels = None if labels is None else np.asarray(labels)
        self.k = int(k)
        self.result = None
        self._stop = threading.Event()
        self._seen = 0
        self.cell_worker = LatestExecutor(synchronous=synchronous)
        self.method = method

        rows = self.layers[::-1]  # the top layer first, so the bottom layer is drawn at the bottom
        self.matrix, self.matrix_fig = _heatmap(rows, ["-", " "], "similarity to the final network", "checkpoint (step)",
                                                "layer", width="520px")
        self.matrix.interactions = {"click": "select"}
        self.matrix.selected_style = {"stroke": "#ff2d55", "stroke-width": "3px"}
        self.matrix.on_element_click(self._on_matrix_click)
        self.matrix_fig.add_class("t-dynamics-matrix-plot")
        self.grid, self.grid_fig = _heatmap(rows, self.layers, "layer at checkpoint vs final layer", "final network",
                                            "at checkpoint", width="380px")
        self.grid_fig.add_class("t-dynamics-grid")
        self.slider = W.IntSlider(0, min=0, max=0, description="checkpoint", continuous_update=True)
        self.slider.add_class("t-dynamics-slider")
        W.link((self.slider, "value"), (self, "checkpoint"))
        self.method_picker = W.ToggleButtons(options=list(METHODS), value=method, style={"button_width": "64px"})
        W.link((self.method_picker, "value"), (self, "method"))
        self.progress = W.IntProgress(0, min=0, max=1, description="checkpoints")
        self.progress.add_class("t-dynamics-progress")
        self.stop_button = W.Button(description="Stop", icon="stop")
        self.stop_button.add_class("t-dynamics-stop")
        self.stop_button.on_click(lambda _: self.stop())
        self.refresh_button = W.Button(description="Recompute", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.info = W.HTML("")
        self.info.add_class("t-dynamics-info")
        xs = bq.LinearScale()
        ys = bq.LinearScale()
        self.lines = bq.Lines(x=np.zeros(0), y=np.zeros((0, 0)), scales={"x": xs, "y": ys},
                              colors=[c for c in _COLORS for _ in (0, 1)], line_style="solid",
                              labels=[], display_legend=True, stroke_width=1.2)
        self.dir_fig = bq.Figure(marks=[self.lines], title="click a matrix cell: top SVCCA directions",
                                 axes=[bq.Axis(scale=xs, label="probe images, sorted by class"),
                                       bq.Axis(scale=ys, orientation="vertical", label="variate")],
                                 fig_margin={"top": 40, "bottom": 50, "left": 50, "right": 10},
                                 layout=W.Layout(width="520px", height="260px"))
        self.dir_fig.add_class("t-dynamics-directions")
        self.body.children = [
            W.HBox([self.method_picker, self.refresh_button, self.stop_button, self.progress]),
            W.HBox([self.matrix_fig, W.VBox([self.slider, self.grid_fig])]), self.dir_fig, self.info]
        self.observe(self._on_checkpoint, "checkpoint")
        self.observe(lambda _: self.refresh(), "method")
        if _count(run) >= 2:
            self.refresh()
        if live and hasattr(run, "done") and not run.done:
            self._watcher = threading.Thread(target=self._watch, args=(float(interval),), daemon=True)
            self._watcher.start()

    # ------------------------------------------------------------------ computing
    def refresh(self):
        """Recompute the matrix from the run's checkpoints so far (latest wins; Stop ends it)."""
        if _count(self.run) < 2:
            self.info.value = "waiting for a second checkpoint…"
            return None
        self._stop = threading.Event()
        stop, method, layers = self._stop, self.method, list(self.layers)
        self._seen = _count(self.run)
        self.state = "computing"
        self.progress.value = 0

        def progress(done, total):
            self.progress.max, self.progress.value = total, done

        def job(ticket):
            return learning_dynamics(self.run, self.x, layers, method, cancel=Stop(ticket, stop), progress=progress,
                                     callback=ticket.emit)
        return self.submit(job, on_result=self._show, on_partial=self._show, busy="comparing checkpoints…")

    def stop(self) -> None:
        """Stop the computation now; the checkpoints compared so far stay drawn."""
        self._stop.set()

    def _watch(self, interval: float) -> None:
        done = threading.Event()
        while not done.wait(interval):
            finished = self.run.done
            if _count(self.run) > self._seen or finished:
                with self.error.capture():
                    self.refresh()
            if finished:
                return

    # ------------------------------------------------------------------ drawing
    def _show(self, result) -> None:
        self.result = result
        cols = [str(s) for s in result.steps]
        with self.matrix.hold_sync():  # colour first: bqplot checks the columns against it
            self.matrix.color = result.similarity.T[::-1]
            self.matrix.column = np.array(cols)
        self.slider.max = len(cols) - 1
        if result.complete or self.checkpoint >= len(cols):
            self.checkpoint = len(cols) - 1 if self.checkpoint >= len(cols) else self.checkpoint
        self._on_checkpoint(None)
        self.state = "done" if result.complete else ("stopped" if self._stop.is_set() else "computing")
        conv = result.convergence_step(0.9)
        self.info.value = (f"{result.method.upper()} over {result.n_images} probe images; first step at or above "
                           "0.9: " + ", ".join(f"{k} {v if v is not None else '-'}" for k, v in conv.items()))
        self.computed += 1

    @guarded
    def _on_checkpoint(self, _change) -> None:
        r = self.result
        if r is None or r.grid is None:
            return
        t = min(max(self.checkpoint, 0), len(r.steps) - 1)
        self.grid.color = r.grid[t][::-1]
        self.grid_fig.title = f"step {r.steps[t]} ({100 * r.fractions[t]:.0f}%) vs final"

    def _on_matrix_click(self, mark, event) -> None:
        with self.error.capture():
            data = event.get("data", {})
            self.pick(len(self.layers) - 1 - int(data["rowNum"]), int(data["columnNum"]))

    def click(self, row: int, column: int) -> None:
        """What a browser click on matrix cell (row from the top, column) does (scripts and tests)."""
        self._on_matrix_click(self.matrix, {"event": "element_click", "data": {"rowNum": row, "columnNum": column}})

    def pick(self, layer_index: int, checkpoint_index: int) -> None:
        """Show layer ``layer_index``'s top SVCCA directions at checkpoint ``checkpoint_index`` beside the final's."""
        self.cell = (int(layer_index), int(checkpoint_index))
        layer = self.layers[layer_index]
        model, states, steps, _, _ = checkpoint_states(self.run)
        x, order = self.x, (np.argsort(self.labels, kind="stable") if self.labels is not None else None)
        k = self.k

        def job(ticket):
            a = layer_codes(model, states[checkpoint_index], x, layer)
            b = layer_codes(model, states[-1], x, layer)
            ticket.check()
            return layer, steps[checkpoint_index], canonical_directions(a, b, k=k)

        def show(value):
            with self.error.capture():
                name, step, (va, vb, corr) = value
                va, vb = (va, vb) if order is None else (va[order], vb[order])
                ys = [v[:, i] for i in range(va.shape[1]) for v in (va, vb)]
                with self.lines.hold_sync():
                    self.lines.x = np.arange(len(va))
                    self.lines.y = np.array(ys)
                    self.lines.labels = [f"{tag} dir {i + 1}" for i in range(va.shape[1])
                                         for tag in (f"step {step}", "final")]
                    self.lines.colors = [c for c in _COLORS[:va.shape[1]] for _ in (0, 1)]
                    self.lines.line_style = "solid"
                self.dir_fig.title = (f"{name}: step {step} vs final, top SVCCA correlations "
                                      + ", ".join(f"{c:.2f}" for c in corr))
        self.cell_worker.submit(job, on_result=show, on_error=self.error.show)

    def wait(self, timeout: float = 60.0) -> bool:
        return super().wait(timeout) and self.cell_worker.wait_idle(timeout)


def _count(run) -> int:
    return len(run.checkpoints) if hasattr(run, "checkpoints") else len(run)


__all__ = ["DynamicsMatrix"]
