"""ScanView: a data-set-wide scan with a progress bar and a Stop button (the widget side of ``methods.scan``)."""
from __future__ import annotations

import html
import threading

import ipywidgets as W
import traitlets

from ..engine import Stop
from ..methods.scan import scan
from .base import View


class ScanView(View):
    """Run ``scan(insp, dataset, what, ...)`` in the background with progress, Stop, and what was skipped.

    Args:
        insp, dataset, what: as :func:`ipynetviz.methods.scan.scan`.
        start: begin at once (default) or wait for :meth:`start` / the Start button.
        synchronous: run in the caller's thread (scripts and tests).
        **scan_options: passed to ``scan`` (``engine``, ``batch_size``, ``save_to``, Ray settings, ...).

    Traits: ``done``, ``total`` (images), ``running``. ``result`` holds the :class:`ScanResult` once finished
    (``complete=False`` after Stop); open it in PatchGallery / CorrespondenceMatrix via ``save_to`` and
    ``examples=``.

    Example:
        >>> view = ScanView(insp, "photos/", [TopPatches(["conv3"], k=9)], save_to="photos-examples")  # doctest: +SKIP
    """

    done = traitlets.Int(0)
    total = traitlets.Int(0)
    running = traitlets.Bool(False)

    def __init__(self, insp, dataset, what, start: bool = True, synchronous: bool = False, **scan_options):
        super().__init__(synchronous=synchronous, css_class="t-scan")
        self.insp, self.dataset, self.what, self.options = insp, dataset, what, scan_options
        self.result = None
        self._stop = threading.Event()
        self.bar = W.IntProgress(value=0, min=0, max=1, description="scan", layout=W.Layout(width="420px"))
        self.bar.add_class("t-scan-bar")
        self.start_button = W.Button(description="Start", icon="play")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.start_button.add_class("t-scan-start")
        self.stop_button.add_class("t-scan-stop")
        self.summary = W.HTML("")
        self.summary.add_class("t-scan-summary")
        self.body.children = [W.HBox([self.bar, self.start_button, self.stop_button]), self.summary]
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        if start:
            self.start()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)
        self.bar.max, self.bar.value = max(1, self.total), self.done

    def start(self) -> None:
        """Start (or restart) the scan."""
        self._stop.clear()
        self.running = True
        self.start_button.disabled, self.stop_button.disabled = True, False

        def job(ticket):
            try:
                return scan(self.insp, self.dataset, self.what, progress=self._progress,
                            cancel=Stop(self._stop, ticket), **self.options)
            except BaseException:
                self._idle()  # the error area shows what went wrong; the buttons work again
                raise
        self.submit(job, on_result=self._finished, busy="scanning…")

    def stop(self) -> None:
        """Stop after the current batch; ``result`` then covers the images scanned so far."""
        self._stop.set()

    def _idle(self) -> None:
        self.running = False
        self.start_button.disabled, self.stop_button.disabled = False, True

    def _finished(self, result) -> None:
        self.result = result
        self._idle()
        state = "done" if result.complete else "stopped"
        skipped = "".join(f"<li>{html.escape(p)}: {html.escape(r)}</li>" for p, r in result.skipped[:20])
        more = f"<li>… {len(result.skipped) - 20} more</li>" if len(result.skipped) > 20 else ""
        self.summary.value = (f"{state}: {result.n_images} images scanned, {len(result.skipped)} files skipped"
                              + (f"<ul>{skipped}{more}</ul>" if skipped else ""))

