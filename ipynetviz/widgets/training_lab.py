"""TrainingLab: train a network live and watch it learn (curves, conv1 filters, feature maps, update ratios).

A thin view over :func:`ipynetviz.methods.training.train`: the controls become ``train(...)`` arguments, a hook
of the run draws the views, throttled so that drawing takes at most 3% of the training time and the test-set
evaluation another 3% (the goal: training at >= 0.9x the speed of a plain loop).
Compare mode keeps earlier runs on the same axes; every run with the same seed starts from the same weights
and sees the data in the same order (the optimizer race, the randomization test, batch norm on/off).
"""
from __future__ import annotations

import copy
import html
import threading
import time

import ipywidgets as W
import traitlets

from ..engine import Inspector, Selection
from ..engine.errors import SettingError
from ..methods import training as T
from ..methods.training.api import warm_up
from ..methods.training.record import weight_layers
from ..render import gray_tiles, tile
from .base import ClickImage, View, conv_for, dropdown, guarded, link_selection
from .filter_grid import FilterGrid
from .training_plots import Curves, Histogram, LayerHistograms, RatioBars


class LiveView:
    """A hook of the run: calls ``draw(run)`` at the first step, then at most every ``interval`` seconds and
    only after ``1 / budget`` times the last drawing's cost has passed in training (so drawing takes at most
    ``budget`` of the time), and once at the end."""

    def __init__(self, draw, attach, interval: float = 0.5, budget: float = 0.03):
        self.draw, self.attach, self.interval, self.budget = draw, attach, interval, budget
        self.last, self.cost, self.draws = 0.0, 0.0, 0

    def on_start(self, run) -> None:
        self.attach(run)
        self._draw(run)

    def after_step(self, run, step: int) -> None:
        since = time.perf_counter() - self.last
        if step == 1 or (since >= self.interval and since * self.budget >= self.cost):
            self._draw(run)

    def on_end(self, run) -> None:
        self._draw(run)

    def _draw(self, run) -> None:
        t0 = time.perf_counter()
        self.draw(run)
        self.last = time.perf_counter()
        self.cost = self.last - t0
        self.draws += 1


class TrainingLab(View):
    """Train a zoo model (or Zhang et al.'s MLP) with chosen optimiser, schedule, batch norm and data corruption,
    and watch it learn.

    Args:
        model: ``"shapes-cnn"``, ``"digits-cnn"`` or ``"mlp-512"`` (other settings: the traits below).
        selection: a shared :class:`ipynetviz.Selection`; the layer picked here is selected there and back.
        background: train in a thread (False: ``start()`` returns when the run ends; scripts and tests).
        n_test: test images measured as often as 3% of the training time allows (and at the end).
        interval: seconds between two redraws of the live views.

    Traits: ``model_name``, ``batch_norm``, ``corruption``, ``p``, ``augment``, ``optimizer``, ``lr``,
    ``schedule``, ``batch_size``, ``weight_decay``, ``epochs``, ``n_train``, ``seed``, ``compare``, ``layer``;
    read-outs ``state``, ``step``, ``points`` (curve points drawn), ``draws``. ``runs`` lists the runs shown.
    Parts: ``layer_list`` (the recorded layers as buttons; a click selects the layer in every linked view),
    ``grad_histograms`` (the latest gradient histogram of every layer), ``save_weights(path)`` /
    ``load_weights(path)`` behind the Save / Load buttons (atomic writes; see ``Run.save``).

    Example:
        >>> lab = TrainingLab("digits-cnn", epochs=1, n_train=256, background=False)   # doctest: +SKIP
        >>> lab.start(); lab.run.history.evals[-1]["test_accuracy"]                       # doctest: +SKIP
    """

    model_name = traitlets.Enum(T.MODELS, default_value="shapes-cnn")
    batch_norm = traitlets.Bool(False)
    corruption = traitlets.Enum(T.CORRUPTIONS, default_value="true")
    p = traitlets.Float(0.5)
    augment = traitlets.Bool(False)
    optimizer = traitlets.Enum(T.OPTIMIZERS, default_value="adam")
    lr = traitlets.Float(1e-3)
    schedule = traitlets.Enum(T.SCHEDULES, default_value="constant")
    batch_size = traitlets.Int(64)
    weight_decay = traitlets.Float(0.0)
    epochs = traitlets.Int(3)
    n_train = traitlets.Int(1000)
    seed = traitlets.Int(0)
    compare = traitlets.Bool(False)
    layer = traitlets.Unicode("")
    state = traitlets.Unicode("idle")
    step = traitlets.Int(0)
    points = traitlets.Int(0)
    draws = traitlets.Int(0)

    def __init__(self, model: str = "shapes-cnn", selection: Selection | None = None, background: bool = True,
                 n_test: int = 200, interval: float = 0.5, **settings):
        super().__init__(selection=selection, synchronous=True, css_class="t-training-lab")
        self.model_name = model
        for k, v in settings.items():
            if not self.has_trait(k):
                raise SettingError(f"TrainingLab has no setting {k!r}; settings: {sorted(self._settings())}")
            setattr(self, k, v)
        self.background, self.n_test, self.interval = background, n_test, interval
        self.run: T.Run | None = None
        self.runs: list[T.Run] = []
        self.live: LiveView | None = None
        self._view_key = None
        self._views_of: T.Run | None = None
        self.view_insp: Inspector | None = None
        self.filters: FilterGrid | None = None
        self.curves, self.ratios, self.histogram = Curves(), RatioBars(), Histogram()
        self.grad_histograms = LayerHistograms("grad", "gradient")
        self._build_controls()
        self._build_checkpoint_row()
        # the layers the run records (weights), as buttons: a click selects that layer in every linked view
        self.layer_list = W.ToggleButtons(options=[], value=None, description="layer",
                                          style={"button_width": "auto", "description_width": "initial"})
        self.layer_list.add_class("t-training-layer-list")
        self._listing = False
        self.layer_list.observe(self._on_layer_list, names="value")
        self.filter_box = W.VBox([W.HTML("<i>conv1 filters appear when a run starts</i>")])
        self.filter_box.add_class("t-training-filters")
        self.maps = ClickImage(css_class="t-training-maps", scale=2.0)
        self.layer_picker = dropdown([""], "", "feature maps of", "t-training-layer")
        W.link((self.layer_picker, "value"), (self, "layer"))
        self.observe(self._on_layer, names="layer")
        link_selection(self, ("layer",))
        curves = W.HBox([self.curves.loss_figure, self.curves.accuracy_figure, self.ratios.figure])
        pictures = W.HBox([self.filter_box, W.VBox([self.layer_picker, self.maps]), self.histogram.figure],
                          layout={"align_items": "flex-start"})
        self.body.children = [self.controls, self.bar_row, self.checkpoint_row, self.layer_list, self.curves.legend,
                              curves, pictures, self.grad_histograms.box]
        self._prefetch_thread: threading.Thread | None = None
        self.observe(lambda _: self._prefetch(), names=["model_name", "n_train"])
        self._prefetch()
        # the first torch optimiser of a process imports torch._dynamo (~1.5 s): pay it here, while the data set
        # is drawn in the background, rather than between Start and the first point of the curve
        warm_up()

    def _data_settings(self) -> tuple[str, int]:
        data = T.models.dataset_of(self.model_name)
        most = {"digits": 1347, "mnist": 4000}.get(data)
        return data, (min(self.n_train, most) if most else self.n_train)

    def _prefetch(self) -> None:
        """Draw the data set in the background now, so that Start shows its first point at once."""
        if self._prefetch_thread is not None and self._prefetch_thread.is_alive():
            return
        data, n_train = self._data_settings()
        self._prefetch_thread = threading.Thread(target=T.zoo_data, args=(data, n_train, self.n_test),
                                                 name="ipynetviz-prefetch", daemon=True)
        self._prefetch_thread.start()

    # ------------------------------------------------------------------------------ controls
    @staticmethod
    def _settings():
        return ("model_name", "batch_norm", "corruption", "p", "augment", "optimizer", "lr", "schedule",
                "batch_size", "weight_decay", "epochs", "n_train", "seed", "compare")

    def _build_controls(self) -> None:
        s = {"description_width": "initial"}
        parts = {
            "model_name": dropdown(list(T.MODELS), self.model_name, "model", "t-training-model"),
            "batch_norm": W.Checkbox(description="batch norm", indent=False),
            "corruption": dropdown(list(T.CORRUPTIONS), self.corruption, "data", "t-training-corruption"),
            "p": W.FloatSlider(min=0.0, max=1.0, step=0.1, description="p", style=s, layout={"width": "180px"}),
            "augment": W.Checkbox(description="augment", indent=False),
            "optimizer": dropdown(list(T.OPTIMIZERS), self.optimizer, "optimizer", "t-training-optimizer"),
            "lr": W.FloatLogSlider(min=-5, max=2, step=0.25, description="lr", style=s, readout_format=".1e"),
            "schedule": dropdown(list(T.SCHEDULES), self.schedule, "schedule", "t-training-schedule"),
            "batch_size": W.BoundedIntText(min=1, max=100000, description="batch", style=s,
                                           layout={"width": "120px"}),
            "weight_decay": W.BoundedFloatText(min=0.0, max=100.0, step=1e-4, description="weight decay",
                                               style=s, layout={"width": "170px"}),
            "epochs": W.BoundedIntText(min=1, max=1000, description="epochs", style=s, layout={"width": "120px"}),
            "n_train": W.BoundedIntText(min=1, max=100000, description="images", style=s,
                                        layout={"width": "140px"}),
            "seed": W.BoundedIntText(min=0, max=2 ** 31 - 1, description="seed", style=s, layout={"width": "120px"}),
            "compare": W.Checkbox(description="compare (keep earlier runs)", indent=False),
        }
        for name, w in parts.items():
            w.value = getattr(self, name)
            w.add_class(f"t-training-{name.replace('_', '-')}")
            W.link((w, "value"), (self, name))
        self.parts = parts
        self.start_button = W.Button(description="Start", button_style="success", icon="play")
        self.pause_button = W.Button(description="Pause", icon="pause", disabled=True)
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        for b, css, fn in ((self.start_button, "t-training-start", self._on_start),
                           (self.pause_button, "t-training-pause", self._on_pause),
                           (self.stop_button, "t-training-stop", self._on_stop)):
            b.add_class(css)
            b.on_click(fn)
        self.bar = W.IntProgress(value=0, min=0, max=1, layout={"width": "300px"})
        self.bar.add_class("t-training-progress")
        self.speed = W.HTML("")
        self.speed.add_class("t-training-speed")
        p = parts
        self.controls = W.VBox([
            W.HBox([p["model_name"], p["batch_norm"], p["corruption"], p["p"], p["augment"], p["n_train"]]),
            W.HBox([p["optimizer"], p["lr"], p["schedule"], p["batch_size"], p["weight_decay"], p["epochs"],
                    p["seed"]]),
        ])
        self.bar_row = W.HBox([self.start_button, self.pause_button, self.stop_button, p["compare"], self.bar,
                               self.speed])

    def _build_checkpoint_row(self) -> None:
        self.weights_path = W.Text(value="training-run.pt", description="weights file",
                                   style={"description_width": "initial"}, layout={"width": "320px"})
        self.weights_path.add_class("t-training-weights-path")
        self.save_button = W.Button(description="Save weights", icon="save")
        self.load_button = W.Button(description="Load weights", icon="upload")
        for b, css, fn in ((self.save_button, "t-training-save", self._on_save),
                           (self.load_button, "t-training-load", self._on_load)):
            b.add_class(css)
            b.on_click(fn)
        self.weights_status = W.HTML("")
        self.weights_status.add_class("t-training-weights-status")
        self.checkpoint_row = W.HBox([self.weights_path, self.save_button, self.load_button, self.weights_status])

    @guarded
    def _on_save(self, _=None) -> None:
        self.save_weights(self.weights_path.value)

    @guarded
    def _on_load(self, _=None) -> None:
        self.load_weights(self.weights_path.value)

    def save_weights(self, path: str) -> T.Checkpoint:
        """Write the current run's weights to ``path`` (atomically; a run in progress is held for the copy)."""
        if self.run is None:
            raise SettingError("no run to save yet; press Start first")
        checkpoint = self.run.save(path)
        self.weights_status.value = html.escape(f"saved step {checkpoint.step} to {checkpoint.path}")
        return checkpoint

    def load_weights(self, path: str) -> T.Checkpoint:
        """Load weights saved from this model into the current run (paused or over) and redraw the views."""
        if self.run is None:
            raise SettingError("no run to load weights into; press Start (then Pause or Stop) first")
        checkpoint = self.run.load(path)
        self.weights_status.value = html.escape(f"loaded {checkpoint.path} into the run (step {self.run.step})")
        if self._views_of is self.run:
            self._draw_views(self.run)
        return checkpoint

    @guarded
    def _on_start(self, _=None) -> None:
        self.start()

    @guarded
    def _on_pause(self, _=None) -> None:
        if self.run is None or self.run.done:
            return
        if self.run.state == "paused" or not self.run._resume.is_set():
            self.resume()
        else:
            self.pause()

    @guarded
    def _on_stop(self, _=None) -> None:
        self.stop()

    # ---------------------------------------------------------------------------- run control
    def start(self) -> T.Run:
        """Start a run with the current settings (earlier runs stay on the axes in compare mode)."""
        if self.run is not None and not self.run.done:
            raise SettingError("a run is in progress; press Stop (or wait for it to end) before starting another")
        self.error.clear()
        if not self.compare:
            self.curves.clear()
            self.runs = []
        label = (f"{self.model_name}{'+bn' if self.batch_norm else ''} {self.optimizer} lr {self.lr:g}"
                 + (f" {self.corruption}" + (f" p={self.p:g}" if self.corruption == "partial" else "")
                    if self.corruption != "true" else ""))
        self._index = self.curves.add_run(label)
        self.live = LiveView(self._draw, self._attach, interval=self.interval)
        data, n_train = self._data_settings()
        if self._prefetch_thread is not None:
            self._prefetch_thread.join()  # the data set being drawn already: wait for it rather than draw it twice
        self.state = "running"
        self.pause_button.disabled = self.stop_button.disabled = False
        self.pause_button.description = "Pause"
        try:
            self.run = T.train(self.model_name, data, n_train=n_train, n_test=self.n_test,
                               batch_norm=self.batch_norm, corruption=self.corruption, p=self.p,
                               augment=self.augment, optimizer=self.optimizer, lr=self.lr, schedule=self.schedule,
                               batch_size=self.batch_size, weight_decay=self.weight_decay, epochs=self.epochs,
                               seed=self.seed, record_every=20, eval_every=1, eval_budget=0.03,
                               hooks=[self.live], background=self.background)
        except Exception:
            self.state = "idle"
            self.pause_button.disabled = self.stop_button.disabled = True
            raise
        self.runs.append(self.run)
        return self.run

    def pause(self) -> None:
        if self.run is not None:
            self.run.pause()
            self.pause_button.description = "Resume"
            self.state = "paused"

    def resume(self) -> None:
        if self.run is not None:
            self.run.resume()
            self.pause_button.description = "Pause"
            self.state = "running"

    def stop(self) -> None:
        if self.run is not None:
            self.run.stop()

    def wait(self, timeout: float = 600.0) -> bool:
        """Block until the current run ends (scripts and tests)."""
        if self.run is not None:
            self.run._done.wait(timeout)
            return self.run.done
        return True

    # ------------------------------------------------------------------------------- drawing
    def _attach(self, run: T.Run) -> None:
        """At the start of a run (training thread): only the step axis; the pictures wait for the first point."""
        self.curves.set_steps(run.total_steps)
        self._views_of = None

    def _prepare_views(self, run: T.Run) -> None:
        """Once per run, after its first curve point is drawn: a CPU copy of the model for the pictures."""
        self._views_of = run
        key = (self.model_name, self.batch_norm)
        model = copy.deepcopy(run.model).cpu().eval()
        x0 = run.test[0][:1] if run.test is not None else run.x[:1]
        self._image = run.transform(x0).cpu() if run.transform is not None else x0.float().cpu()
        if key != self._view_key or self.view_insp is None:
            self.view_insp = Inspector(model, device="cpu", input_size=tuple(self._image.shape[1:]))
            layers = [n for n in self.view_insp.layers if self.view_insp.layer_shape(n) is not None
                      and len(self.view_insp.layer_shape(n)) == 3]
            self.layer_picker.options = layers or [""]
            self._listing = True
            try:
                self.layer_list.options = list(weight_layers(model))
                self.layer_list.value = None
            finally:
                self._listing = False
            if self.layer not in layers:
                self.layer = layers[1] if len(layers) > 1 else (layers[0] if layers else "")
            if self.view_insp.conv_layers:
                # the shared selection: a filter clicked here selects that layer and channel in the other views
                self.filters = FilterGrid(self.view_insp, layer=self.view_insp.conv_layers[0],
                                          selection=self.selection)
                self.filters.leave_pictures_first()  # redrawn from the training thread
                self.filter_box.children = [self.filters]
            else:
                self.filters = None
                self.filter_box.children = [W.HTML("<i>an MLP has no convolution filters to draw</i>")]
            self._view_key = key
        else:
            with self.view_insp.model_lock:
                self.view_insp.model.load_state_dict(model.state_dict())
        if self.layer:
            self._show_in_list(self.layer)

    def _draw(self, run: T.Run) -> None:
        with self.error.capture():
            self.bar.max = max(1, run.total_steps)
            self.bar.value = run.step
            self.step = run.step
            self.speed.value = (f"step {run.step}/{run.total_steps} · epoch {run.epoch + 1} · "
                                f"{run.steps_per_second:.1f} steps/s · {html.escape(run.state)}")
            self.points = self.curves.update(self._index, run.history)
            if self._views_of is not run and (self.points or run.state not in ("running", "paused")):
                self._prepare_views(run)  # building them costs ~0.2 s: after the first point, not before it
            if self._views_of is run:
                self._draw_views(run)
            layers = run.history.layers
            self.ratios.update(layers[-1] if len(layers) > 1 else None)
            self._draw_histograms(run)
            if run.done or run.state in ("finished", "stopped", "diverged", "failed") or run.step >= run.total_steps:
                self._finish(run)
            self.draws += 1
            if run.error:
                self.error.show(run.error)

    def _draw_views(self, run: T.Run) -> None:
        state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
        with self.view_insp.model_lock:
            self.view_insp.model.load_state_dict(state)
        if self.filters is not None:
            self.filters._redraw()
        self._draw_maps()

    def _draw_histograms(self, run: T.Run) -> None:
        hists = run.history.histograms
        if hists:
            self.histogram.update(self._weight_layer(hists[-1]), hists[-1])
            with_grads = [h for h in hists if any(isinstance(v, dict) and "grad" in v for v in h.values())]
            if with_grads:
                self.grad_histograms.update(with_grads[-1])

    def _finish(self, run: T.Run) -> None:
        self.state = run.state if run.state != "running" else "finished"
        self.pause_button.disabled = self.stop_button.disabled = True

    def _weight_layer(self, row: dict) -> str:
        names = [k for k in row if k != "step"]
        if self.layer_list.value in names:
            return self.layer_list.value
        if self.view_insp is not None and self.layer:
            conv = conv_for(self.view_insp, self.layer)
            if conv in names:
                return conv
        return names[0] if names else ""

    def _draw_maps(self) -> None:
        if self.view_insp is None or not self.layer:
            return
        acts = self.view_insp.activations(self._image, [self.layer])[self.layer][0]
        pic, layout = tile(gray_tiles(acts.numpy()), pad=1)
        self.maps.set_image(pic, layout)

    @guarded
    def _on_layer(self, change=None) -> None:
        if self.view_insp is not None and self.layer in self.view_insp.layers:
            self._draw_maps()
            self._show_in_list(self.layer)

    def _show_in_list(self, layer: str) -> None:
        """Light the list's button of the weight layer behind ``layer`` (relu3 -> conv3) without pushing it."""
        weight = layer if layer in self.layer_list.options else conv_for(self.view_insp, layer)
        if weight in self.layer_list.options and self.layer_list.value != weight:
            self._listing = True
            try:
                self.layer_list.value = weight
            finally:
                self._listing = False

    @guarded
    def _on_layer_list(self, change) -> None:
        """A click on the list: that layer goes to the shared selection (every linked view follows), the lab's
        feature maps follow when the layer has maps, and its weight histogram is drawn."""
        if self._listing or change["new"] is None:
            return
        self.selection.layer = change["new"]
        if self.run is not None:
            self._draw_histograms(self.run)

    def accept_layer(self, layer: str) -> None:
        if layer in self.layer_picker.options:
            self.layer = layer
        elif self.view_insp is not None and layer in self.layer_list.options:
            self._show_in_list(layer)


__all__ = ["TrainingLab", "LiveView"]
