"""Parts every view is built from: a visible error area, a clickable picture, latest-wins execution, the link to
the shared selection, the models' locks, and the layer and patch helpers several views use.

Concrete views import only this module (and their own ``*_parts`` / ``*_plots`` helpers) from ``widgets``, never
another view's module: what two views share lives here.
"""
from __future__ import annotations

import contextlib
import functools
import html
import pathlib
import threading
import time
import traceback
import weakref
from typing import Any, Callable

import anywidget
import ipywidgets as W
import numpy as np
import traitlets

from ..engine import LatestExecutor, Selection, as_imageset
from ..engine.cache import fingerprint
from ..methods.units import input_pictures, top_patches
from ..render import TileLayout, lut, resize, tile, to_data_url, to_hwc_uint8

_HERE = pathlib.Path(__file__).parent

# line colours for curves, one per series (Tableau 10 without grey and olive): charts and the training plots
LINE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


class ErrorArea(W.HTML):
    """Shows the last error of a view in plain sight (Voila hides callback exceptions otherwise).

    Browser tests assert this stays empty; ``.message`` holds the text for Python-side tests.
    """

    message = traitlets.Unicode("")

    def __init__(self, **kw):
        super().__init__(**kw)
        self.add_class("t-error")

    def show(self, err: BaseException | str) -> None:
        text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        self.message = text
        self.value = (f'<div class="ipynetviz-error" style="color:#b00020;white-space:pre-wrap;'
                      f'border-left:3px solid #b00020;padding:2px 6px">{html.escape(text)}</div>')

    def clear(self) -> None:
        self.message = ""
        self.value = ""

    @contextlib.contextmanager
    def capture(self):
        """Run a block; any exception is shown here instead of vanishing."""
        try:
            yield
        except Exception as err:  # shown to the user, and logged for the developer
            self.show(err)
            traceback.print_exc()


def guarded(method: Callable) -> Callable:
    """Decorate a view's callback so an exception lands in ``self.error`` (an :class:`ErrorArea`)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.error.capture():
            return method(self, *args, **kwargs)
    return wrapper


class PicturesFirst:
    """Mixin for an input part of a view (a picture to click, a slider): what the page sends through it is handled
    inside :func:`pictures_first`, so every linked view's new picture goes out before captions and colour bars."""

    def _handle_msg(self, msg):
        with pictures_first():
            return super()._handle_msg(msg)


class ClickImage(PicturesFirst, anywidget.AnyWidget):
    """A picture that reports clicks in image pixels and can outline a tile or a box.

    Traits: ``src`` (PNG data URL), ``scale`` (display zoom), ``click`` ({x, y, n} in image pixels),
    ``tiles`` (a :class:`TileLayout` as dict, for mosaics), ``selected`` (tile index), ``box``.
    (``tiles`` must not be called ``layout``: that name is every DOM widget's CSS :class:`ipywidgets.Layout`, and
    a dict there made the browser's widget manager try to create a view of it, an uncaught
    ``TypeError: Cannot read properties of undefined (reading 'then')`` per mosaic.)
    """

    _esm = _HERE / "click_image.js"
    src = traitlets.Unicode("").tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)
    scale = traitlets.Float(1.0).tag(sync=True)
    click = traitlets.Dict({}).tag(sync=True, echo_update=False)  # the browser sent it: no echo back
    tiles = traitlets.Dict(None, allow_none=True).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    box = traitlets.List([]).tag(sync=True)

    def __init__(self, image: np.ndarray | None = None, scale: float = 1.0, css_class: str | None = None, **kw):
        super().__init__(scale=scale, **kw)
        self.image: np.ndarray | None = None
        if css_class:
            self.add_class(css_class)
        if image is not None:
            self.set_image(image)

    def set_image(self, image: np.ndarray, layout: TileLayout | None = None) -> None:
        """Show a uint8 picture (a mosaic when ``layout`` is given).

        Inside a click's :func:`pictures_first` the picture still goes out at once, together with this widget's
        held outline or scale, in one message.
        """
        self.image = np.asarray(image)
        src = to_data_url(self.image)
        held = self._holding_sync
        with self.hold_sync():  # one comm message for tiles, picture and version instead of three
            self.tiles = None if layout is None else {
                "n": layout.n, "ncols": layout.ncols, "tile_h": layout.tile_h, "tile_w": layout.tile_w,
                "pad": layout.pad}
            self.src = src
            self.version += 1
        if held:
            _send_held(self)

    def tile_at(self, x: float, y: float) -> int | None:
        if self.tiles is None:
            return None
        return TileLayout(**self.tiles).index_at(x, y)

    def tile_of(self, click: dict) -> int | None:
        """Tile index under a ``click`` trait value (None for an empty click, a gap, or no mosaic)."""
        return self.tile_at(click["x"], click["y"]) if click else None

    def simulate_click(self, x: float, y: float) -> None:
        """What a browser click at image pixel (x, y) does (scripts and tests): the page's comm message, handled as
        the page's is (:func:`pictures_first`)."""
        n = int(self.click.get("n", 0)) + 1
        self._handle_msg({"content": {"data": {"method": "update", "buffer_paths": [],
                                               "state": {"click": {"x": float(x), "y": float(y), "n": n}}}},
                          "buffers": []})

    def click_tile(self, i: int) -> None:
        """Click the middle of mosaic tile ``i`` (what a browser click does; for scripts and tests)."""
        layout = TileLayout(**self.tiles)
        y, x = layout.origin(i)
        self.simulate_click(x + layout.tile_w / 2, y + layout.tile_h / 2)


class InputSlider(PicturesFirst, W.IntSlider):
    """An ``IntSlider`` whose moves are handled pictures first (:class:`PicturesFirst`)."""


class ColorBar(W.HTML):
    """The colour scale beside a picture of values: the colormap's gradient, the values at its ends (and 0 in the
    middle of a diverging scale), and one line saying what the colour means.

    Traits ``cmap``, ``lo``, ``hi``, ``meaning`` hold what is drawn (Python-side tests read them; browser tests
    read the same values from the element's ``data-lo`` / ``data-hi`` attributes).

    Example:
        >>> bar = ColorBar(); bar.show("rdbu", -0.5, 0.5, "score drop when hidden")
        >>> (bar.lo, bar.hi, bar.diverging)
        (-0.5, 0.5, True)
    """

    cmap = traitlets.Unicode("")
    lo = traitlets.Float(0.0)
    hi = traitlets.Float(1.0)
    meaning = traitlets.Unicode("")

    def __init__(self, width: int = 256, css_class: str = "t-colorbar", **kw):
        super().__init__(**kw)
        self.width = int(width)
        self.add_class("t-colorbar")
        if css_class != "t-colorbar":
            self.add_class(css_class)

    @property
    def diverging(self) -> bool:
        return self.lo < 0 < self.hi and abs(self.lo + self.hi) <= 1e-9 * max(abs(self.lo), abs(self.hi))

    def show(self, cmap: str, lo: float, hi: float, meaning: str) -> None:
        """Draw ``cmap`` from ``lo`` to ``hi``; a range symmetric around 0 gets a 0 tick in the middle."""
        with self.hold_trait_notifications():
            self.cmap, self.lo, self.hi, self.meaning = cmap, float(lo), float(hi), meaning
        table = lut(cmap)
        stops = ", ".join(f"rgb({r},{g},{b}) {100 * i / 10:.0f}%" for i, (r, g, b) in
                          enumerate(table[np.linspace(0, 255, 11).round().astype(int)]))
        mid = '<span style="position:absolute;left:50%;transform:translateX(-50%)">0</span>' if self.diverging else ""
        self.value = (
            f'<div class="ipynetviz-colorbar" data-cmap="{html.escape(cmap)}" data-lo="{self.lo!r}" '
            f'data-hi="{self.hi!r}" style="width:{self.width}px;font-size:12px;line-height:1.3">'
            f'<div style="height:10px;border:1px solid #999;background:linear-gradient(to right, {stops})"></div>'
            f'<div style="position:relative;height:16px"><span style="position:absolute;left:0">{_tick(lo)}</span>'
            f'{mid}<span style="position:absolute;right:0">{_tick(hi)}</span></div>'
            f'<div style="color:#444">{html.escape(meaning)}</div></div>')


def _tick(v: float) -> str:
    return "0" if v == 0 else f"{v:.3g}"


def link_selection(view, names: tuple[str, ...]) -> None:
    """Keep ``view``'s traits ``names`` and its shared selection in step, both ways.

    A view applies a selection change through ``view.accept_<name>(value)`` (it may refuse or translate
    values, e.g. a filter grid shows conv2 for relu2) and pushes its own changes to the selection; what it
    does while following the selection is not pushed back, so views never fight over a value.
    """
    sel = view.selection
    following = []

    def from_selection(change):
        if change["new"] is None:
            return
        following.append(True)
        try:
            getattr(view, f"accept_{change['name']}")(change["new"])
        finally:
            following.pop()

    def to_selection(change):
        if not following and change["new"] is not None and getattr(sel, change["name"]) != change["new"]:
            setattr(sel, change["name"], change["new"])
    sel.observe(from_selection, names=list(names))
    view.observe(to_selection, names=list(names))


@contextlib.contextmanager
def hold_models(*inspectors):
    """Hold each inspector's ``model_lock`` while a view's worker runs the models.

    Each view works in its own background thread, but module hooks and the eval guard's saved
    ``requires_grad`` flags belong to the one shared model, so two views must not run it at the same time.
    Two models are always locked in one order (by ``id``, each once), so two views over the same pair never
    wait for each other in a circle.
    """
    with contextlib.ExitStack() as stack:
        for insp in sorted({id(i): i for i in inspectors}.values(), key=id):
            stack.enter_context(insp.model_lock)
        yield


# ---------------------------------------------------------------- layers and patches several views show
def spatial_layers(insp) -> list[str]:
    """Layers whose output is a (C, H, W) map of image positions, in forward order (see Inspector.spatial_layers)."""
    return insp.spatial_layers


def conv_for(insp, layer: str | None) -> str | None:
    """The convolution whose channels ``layer`` shows: itself, or the last conv before it with the same channel
    count and only channel-preserving layers (ReLU, BatchNorm, pooling) between; None otherwise."""
    convs = insp.conv_layers
    if layer in convs:
        return layer
    order = insp.layers
    if layer not in order:
        return None
    shape = insp.layer_shape(layer)
    if not shape or len(shape) != 3:
        return None
    for name in reversed(order[:order.index(layer)]):
        s = insp.layer_shape(name)
        if not s or len(s) != 3 or s[0] != shape[0]:
            return None
        if name in convs:
            return name
    return None


def scale_for(size: int, target: int) -> int:
    """The whole-number zoom that brings ``size`` pixels closest to ``target`` screen pixels (at least 1)."""
    return max(1, int(round(target / max(size, 1))))


DEFAULT_K = 9


def default_k(available: int, preferred: int = DEFAULT_K) -> int:
    """A view's default number of patches or neighbours: ``preferred``, but never more than the data set offers
    (a default must not warn that 50 were asked of 30 images; an explicit ``k`` still does)."""
    return max(1, min(preferred, int(available)))


class PatchSource:
    """Top patches of a data set, computed once per layer and shared through the inspector's result cache.

    With ``examples`` (a dataset-examples folder saved by ``ipynetviz.methods.scan``, made by this model from
    this data set) the layers it holds are read from disk instantly instead of scanned.
    """

    def __init__(self, insp, dataset, k: int | None = None, examples=None):
        self.data = as_imageset(dataset)
        self.insp, self.k = insp, default_k(len(self.data)) if k is None else int(k)
        self._key = None
        self.examples = None
        if examples is not None:
            from ..methods.scan import open_examples
            self.examples = open_examples(examples, insp)  # another model's folder: an error naming the fix

    @property
    def key(self) -> str:
        if self._key is None:  # content hash: two views over equal images share one scan
            self._key = fingerprint(self.data.raw(slice(None)))
        return self._key

    def get(self, layer: str, progress=None):
        if self.examples is not None and layer in self.examples.layers:
            return self.examples.top_patches(layer)
        return self.insp.cached("top_patches", {"layer": layer, "k": self.k, "data": self.key}, None,
                                lambda: top_patches(self.insp, self.data, layer, k=self.k, progress=progress))


def widget_tree(root: W.Widget) -> list[W.Widget]:
    """``root`` and every widget reachable from it through synced traits (children, marks, axes, layouts...)."""
    out, seen, stack = [], set(), [root]
    while stack:
        w = stack.pop()
        if id(w) in seen or not isinstance(w, W.Widget):
            continue
        seen.add(id(w))
        out.append(w)
        for name in w.keys:
            v = getattr(w, name, None)
            items = v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else (v,)
            stack.extend(x for x in items if isinstance(x, W.Widget))
    return out


class FrontendSync(anywidget.AnyWidget):
    """Re-sends a view's state once a browser that loaded the page has every part of it ready to listen.

    A page that connects to a running kernel (Voila, a reloaded notebook) asks the kernel for a snapshot of all
    widget states, then creates the models one by one. A change the kernel sends in between (a background job
    finishing: the first PCA of a map, a top-patch scan) reaches a model that does not exist yet and is dropped,
    so the page kept the snapshot's stale value for good (``n_points`` 0, an empty map). This invisible part waits
    in the browser until every model of the view exists, then says ``ready``; the kernel answers by sending the
    view's current state again (under the views' delivery locks, so no half-delivered result goes out).

    Attributes: ``resyncs`` (how many times the state was re-sent).
    """

    _esm = """
    export default {
      async render({ model, el }) {
        el.style.display = "none";
        const ids = model.get("ids");
        if (!ids.length) return;  // a part of a larger view: the outer one re-sends everything
        await Promise.all(ids.map((id) => model.widget_manager.get_model(id).catch(() => null)));
        model.send({ event: "ready" });
      },
    };
    """
    ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    resyncs = traitlets.Int(0)  # kernel side only

    def __init__(self, root: W.Widget):
        super().__init__()
        self.layout.display = "none"
        self._root = weakref.ref(root)
        self.on_msg(self._on_msg)

    def cover(self) -> None:
        """Make this the part that waits for (and re-sends) the whole tree under the root; called when the root
        is displayed. Syncs of views nested inside go quiet (the outer one covers them)."""
        root = self._root()
        if root is None:
            return
        parts = widget_tree(root)
        for p in parts:
            if isinstance(p, FrontendSync) and p is not self and p.ids:
                p.ids = []
        self.ids = [p.model_id for p in parts if p is not self and getattr(p, "comm", None) is not None]

    def _on_msg(self, _widget, content, _buffers) -> None:
        root = self._root()
        if root is None or not isinstance(content, dict) or content.get("event") != "ready":
            return
        parts = widget_tree(root)
        with contextlib.ExitStack() as stack:
            for p in parts:
                executor = getattr(p, "executor", None)
                if isinstance(executor, LatestExecutor):
                    stack.enter_context(executor.delivering())
            for p in parts:
                if p is not self and getattr(p, "comm", None) is not None:
                    p.send_state()
        self.resyncs += 1


class FrontendSynced:
    """Mixin for a widget box shown on its own: it holds a :class:`FrontendSync` (``self.frontend_sync``, put
    among its children by the subclass) that covers the box's whole tree when the box is displayed."""

    def _repr_mimebundle_(self, **kwargs):
        self.frontend_sync.cover()
        return super()._repr_mimebundle_(**kwargs)


# ------------------------------------------------------------------ one click, pictures first
SETTLE_S = 0.05  # how long a click waits for the work it started, so the results go out before the kernel's idle
_VIEWS: "weakref.WeakSet[View]" = weakref.WeakSet()  # live views that take part (View.PICTURES_FIRST)
_burst = threading.local()
_burst_turns = threading.Lock()


def _send_held(widget: W.Widget) -> None:
    """Send what ``widget`` holds back now (it stays held). Keys are taken out before the send, so a change made
    meanwhile by another thread stays pending instead of being lost."""
    keys = set(widget._states_to_send)
    widget._states_to_send.difference_update(keys)
    if keys:
        widget.send_state(keys)


@contextlib.contextmanager
def pictures_first(settle: float | None = None):
    """Handle one browser input so that its pictures reach the page first.

    One click moves several views at once (a filter tile: the grid's outline, the activation map, the neuron
    picker's map and its guided backprop), and each answer is several comm messages: the picture, its colour bar,
    a caption, outlines in other mosaics. Every message costs time in the kernel, the server and the page, so the
    picture a user waits for came after a dozen others. Inside this context the views' captions, colour bars,
    outlines and controls are held back; a :class:`ClickImage` that gets a new picture sends it at once (with its
    own held outline, in one message). The work the input started in the background gets ``settle`` seconds
    (``SETTLE_S``) to deliver, so its picture also goes out before the kernel reports idle (JupyterLab redraws its
    toolbar on every busy/idle, about 3-5 ms here); then the held parts are sent, under the views' delivery locks.
    Slower work is not waited for any longer and arrives as before. Re-entrant. JupyterLab hands widget messages
    to a kernel subshell (a thread of its own), so inputs from two threads take turns.
    """
    if getattr(_burst, "active", False):
        yield
        return
    settle = SETTLE_S if settle is None else settle
    with _burst_turns:
        views = [v for v in list(_VIEWS) if v.comm is not None]
        started = {v: v.executor.generation for v in views}
        held = []
        for v in views:
            for part in v.held_parts():
                if not part._holding_sync:
                    part._holding_sync = True
                    held.append(part)
        _burst.active = True
        try:
            yield
            deadline = time.monotonic() + settle
            for v in views:
                if v.executor.generation != started[v]:
                    v.executor.wait_idle(max(0.0, deadline - time.monotonic()))
        finally:
            _burst.active = False
            with contextlib.ExitStack() as locks:
                for v in views:
                    locks.enter_context(v.executor.delivering())
                for part in held:
                    part._holding_sync = False
                    _send_held(part)


# ipywidgets gives every HTML widget the controls' 28 px line height: info text of two or more lines then reads
# double-spaced. Text inside our views gets normal spacing (the rule travels with each view; repeats are harmless).
VIEW_CSS = "<style>.ipynetviz-view .widget-html-content { line-height: 1.45; }</style>"


class View(FrontendSynced, W.VBox):
    """Base of every ipynetviz widget: a shared selection, an error area, a status line, latest-wins work.

    Subclasses put their parts in ``self.body`` and call :meth:`submit` for anything slow.
    """

    BUSY_AFTER = 0.2  # seconds of work before the status line says so
    # take part in :func:`pictures_first` (the linked inspection views set it): only for views whose parts change
    # on the main thread or in their executor's deliveries; a view with a thread of its own (training, DSD, a
    # watcher) or progress written from inside a job would race with the release of what is held
    PICTURES_FIRST = False

    def __init__(self, selection: Selection | None = None, synchronous: bool = False, css_class: str = "", **kw):
        self._status_lock = threading.Lock()
        self._status_request = None
        self.selection = selection if selection is not None else Selection()
        self.executor = LatestExecutor(synchronous=synchronous)
        self.error = ErrorArea()
        self.status = W.HTML("")
        self.status.add_class("t-status")
        self.body = W.VBox([])
        self.frontend_sync = FrontendSync(self)
        self.css = W.HTML(VIEW_CSS, layout=W.Layout(display="none"))
        super().__init__([self.body, self.status, self.error, self.frontend_sync, self.css], **kw)
        self.add_class("ipynetviz-view")
        if css_class:
            self.add_class(css_class)
        self._held_parts: list[W.Widget] | None = None
        if self.PICTURES_FIRST:
            _VIEWS.add(self)

    def leave_pictures_first(self) -> None:
        """Keep this view out of :func:`pictures_first`: for a linked view shown inside one that writes to it from a
        thread of its own (the training lab's live filters, the compression lab's filters after DSD)."""
        _VIEWS.discard(self)

    def held_parts(self) -> list[W.Widget]:
        """What :func:`pictures_first` holds back during a click: the view's pictures, texts (captions, colour
        bars, errors) and controls, not its status line (a timer thread writes it). Found once, on first use or
        when the view is displayed; a part added later is simply sent at once."""
        if self._held_parts is None:
            statuses = set()
            tree = widget_tree(self)
            for w in tree:
                if isinstance(w, View):
                    statuses.update((id(w.status), id(w.css)))
            self._held_parts = [w for w in tree if isinstance(w, (ClickImage, W.HTML, W.ValueWidget))
                                and not isinstance(w, W.Box) and id(w) not in statuses]
        return self._held_parts

    def _repr_mimebundle_(self, **kwargs):
        self._held_parts = None
        self.held_parts()  # found now, not on the first click
        return super()._repr_mimebundle_(**kwargs)

    def submit(self, job: Callable[[Any], Any], on_result: Callable[[Any], None],
               on_partial: Callable[[Any], None] | None = None, busy: str = "working…"):
        """Run ``job(ticket)`` in the background; only the newest request's result reaches ``on_result``.

        The status line says ``busy`` only once the work has taken ``BUSY_AFTER`` seconds: a quick click then
        costs no status messages and no line that appears and vanishes (moving everything below it).
        """
        request = object()
        with self._status_lock:
            self._status_request = request

        def show_busy():
            with self._status_lock:
                if self._status_request is request:
                    self.status.value = f'<span class="t-busy">{html.escape(busy)}</span>'
        timer = threading.Timer(self.BUSY_AFTER, show_busy)
        timer.daemon = True
        timer.start()

        def clear_busy():
            timer.cancel()
            with self._status_lock:
                if self._status_request is request:
                    self.status.value = ""  # unchanged values send nothing

        def done(value):
            with self.error.capture():
                self.error.clear()
                on_result(value)
            clear_busy()

        def failed(err):
            self.error.show(err)
            clear_busy()

        def partial(value):
            with self.error.capture():
                on_partial(value)
        return self.executor.submit(job, on_result=done, on_error=failed,
                                    on_partial=partial if on_partial is not None else None)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until background work is finished (scripts and tests)."""
        return self.executor.wait_idle(timeout)

    # ------------------------------------------------------------ following the shared selection
    def accept_layer(self, layer: str) -> None:
        """Follow a layer chosen elsewhere when this view offers it (``self.layers``)."""
        if layer in self.layers:
            self.layer = layer

    def accept_channel(self, channel: int) -> None:
        """Follow a channel chosen elsewhere on this view's layer (or on no layer yet) when the layer has it."""
        if self.selection.layer in (None, self.layer) and 0 <= channel < self._channels(self.layer):
            self.channel = int(channel)

    def accept_image_index(self, index: int) -> None:
        """Follow an image chosen elsewhere when it is one of this view's images."""
        if 0 <= index < self.image_count():
            self.image_index = int(index)

    def image_count(self) -> int:
        """How many images ``image_index`` can point at: ``len(self.images)``, 0 for a view without images."""
        images = getattr(self, "images", None)
        return 0 if images is None else len(images)

    def _channels(self, layer: str) -> int:
        return int(self.insp.layer_shape(layer)[0])

    def _claim_layer(self) -> None:
        """Put this view's layer in the shared selection (before a unit picked here goes there, or when the
        view moves to another layer), so views that show another layer follow where they can."""
        if self.selection.layer != self.layer:
            self.selection.layer = self.layer

    # ------------------------------------------------------------ the thumbnail strip
    def _build_thumbs(self, images, max_thumbs: int, size: int, css_class: str) -> np.ndarray:
        """Make ``self.thumbs``: the first ``max_thumbs`` images, ``size`` pixels square, 16 to a row; a click
        selects that image. Returns the (N, C, H, W) uint8 pictures drawn (at the model input's size)."""
        pictures = input_pictures(self.insp, images, range(min(len(images), max_thumbs)))
        strip, self.thumb_layout = tile([resize(to_hwc_uint8(p), (size, size), smooth=True) for p in pictures],
                                        ncols=16, pad=2)
        self.thumbs = ClickImage(css_class=css_class)
        self.thumbs.set_image(strip, self.thumb_layout)
        self.thumbs.observe(self._on_thumb, names="click")
        return pictures

    def _mark_thumb(self, index: int) -> None:
        """Outline image ``index`` in the strip (nothing when it is past the strip's end)."""
        self.thumbs.selected = index if index < self.thumb_layout.n else -1

    @guarded
    def _on_thumb(self, change) -> None:
        """A click on the view's thumbnail strip (``self.thumbs``) selects that image."""
        i = self.thumbs.tile_of(change["new"])
        if i is not None:
            self.image_index = i


def dropdown(options, value, description: str, css_class: str, **kw) -> W.Dropdown:
    d = W.Dropdown(options=options, value=value, description=description,
                   style={"description_width": "initial"}, **kw)
    d.add_class(css_class)
    return d


class StateProbe(FrontendSynced, W.HBox):
    """A small visible JSON mirror of a widget's traits, so browser tests can read Python-side state.

    Example (in a notebook): ``StateProbe(picker, ["layer", "channel", "image_index"])``; the element has the
    CSS class ``t-state`` and its text is ``{"layer": "conv1", ...}``. Like a view it re-sends its text once the
    page is ready (:class:`FrontendSync`), so a change made by a background job while the page loads is seen.
    """

    def __init__(self, obj: traitlets.HasTraits, names: list[str], css_class: str = "t-state"):
        self.text = W.HTML()
        self.frontend_sync = FrontendSync(self)
        super().__init__([self.text, self.frontend_sync])
        self.add_class(css_class)
        self._obj, self._names = obj, list(names)
        obj.observe(lambda _: self._refresh(), names=self._names)
        self._refresh()

    @property
    def value(self) -> str:
        return self.text.value

    def _refresh(self) -> None:
        import json
        state = {n: _jsonable(getattr(self._obj, n)) for n in self._names}
        self.text.value = f'<code style="font-size:10px;color:#888">{html.escape(json.dumps(state))}</code>'


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return v
