"""One control vocabulary for every long method and lab: ``cancel``, ``progress``, ``callback``, ``callback_every``.

Every method that can take long accepts the same four keywords, with the same meaning everywhere:

``cancel``
    Anything that says "stop": a ``threading.Event``, an executor :class:`~ipynetviz.engine.executor.Ticket`
    (stops when a newer request supersedes it), a :class:`Stop` (a composition of several), or a
    zero-argument callable returning a bool. The method checks it between steps (a batch, an
    optimisation step, a t-SNE interval). When it is set the method stops at the next check and
    **returns what it has so far, marked** ``result.complete is False``. It never raises because of a
    cancel; work that has nothing to show yet returns an empty partial result.

``progress``
    ``False``/``None``: silent. ``True``: a ``tqdm.auto`` bar. A callable: called as
    ``progress(done, total)`` in the method's own unit (images, steps, windows), ``done`` increasing.

``callback`` / ``callback_every``
    ``callback(partial_result)`` is called every ``callback_every`` steps with a result of the same type
    the method returns (``complete=False`` until the last one), so a view can draw it.

Example:
    >>> import threading
    >>> stop = threading.Event()
    >>> is_cancelled(stop), is_cancelled(None)
    (False, False)
    >>> stop.set(); is_cancelled(Stop(None, stop))
    True
    >>> seen = []
    >>> with progress_reporter(lambda done, total: seen.append((done, total)), total=3) as report:
    ...     for i in range(3):
    ...         report(i + 1)
    >>> seen
    [(1, 3), (2, 3), (3, 3)]
"""
from __future__ import annotations

from typing import Any, Callable

from .errors import SettingError

CancelLike = Any
ProgressLike = Any


def is_cancelled(cancel: CancelLike) -> bool:
    """True when ``cancel`` asks to stop (see the module docstring for what it may be)."""
    if cancel is None or cancel is False:
        return False
    if hasattr(cancel, "superseded"):  # an executor Ticket: stop once a newer request replaced it
        return bool(cancel.superseded)
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    if callable(cancel):
        return bool(cancel())
    raise SettingError("cancel must be a threading.Event, an executor Ticket, a Stop or a callable returning "
                       f"a bool, got {type(cancel).__name__}; pass cancel=threading.Event() and set() it to stop")


def check_cancel(cancel: CancelLike) -> CancelLike:
    """Validate a ``cancel`` argument up front (so a typo fails before the work starts) and return it."""
    is_cancelled(cancel)
    return cancel


class Stop:
    """Several stop signals as one: set when any of them is.

    Example:
        >>> import threading
        >>> a, b = threading.Event(), threading.Event()
        >>> s = Stop(a, b); b.set(); s.is_set()
        True
    """

    def __init__(self, *signals: CancelLike):
        self.signals = [s for s in signals if s is not None]

    def is_set(self) -> bool:
        return any(is_cancelled(s) for s in self.signals)


def check_callback_every(value: Any, name: str = "callback_every") -> int:
    """A positive int: steps between two ``callback`` calls."""
    from .checks import check_positive_int
    return check_positive_int(value, name)


class _Reporter:
    """Calls ``progress(done, total)`` or drives a tqdm bar; use as a context manager."""

    def __init__(self, progress: ProgressLike, total: int, desc: str, unit: str):
        self.total = int(total)
        self._bar = None
        self._fn: Callable[[int, int], Any] | None = None
        if progress is True:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.total, desc=desc, unit=unit)
        elif callable(progress):
            self._fn = progress
        elif progress not in (None, False):
            raise SettingError(f"progress must be True, False/None or a callable (done, total), got {progress!r}")

    def __call__(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(int(done) - self._bar.n)
        elif self._fn is not None:
            self._fn(int(done), self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "_Reporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_reporter(progress: ProgressLike, total: int, desc: str = "", unit: str = "it") -> _Reporter:
    """The one way a method reports progress: ``with progress_reporter(progress, n) as report: report(done)``."""
    return _Reporter(progress, total, desc, unit)


def with_progress(items, progress: ProgressLike, total: int, desc: str = "", unit: str = "img",
                  done_of: Callable[[Any], int] | None = None):
    """Wrap an iterator so each item reports progress; ``done_of(item)`` gives the count done after it."""
    reporter = progress_reporter(progress, total, desc, unit)
    if reporter._bar is None and reporter._fn is None:
        return items

    def run():
        done = 0
        try:
            for item in items:
                yield item
                done = done_of(item) if done_of is not None else done + 1
                reporter(done)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            reporter.close()
    return run()


__all__ = ["is_cancelled", "check_cancel", "Stop", "check_callback_every", "progress_reporter", "with_progress"]
