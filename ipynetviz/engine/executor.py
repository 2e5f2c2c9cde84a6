"""Background execution where the latest request wins.

Widgets submit work on every click or slider move. A newer request supersedes older pending ones
(they are dropped without running), a running one is told it is superseded (``ticket.superseded``) so it
can stop early, and a superseded result is never delivered: only the newest request's callbacks fire.
"""
from __future__ import annotations

import atexit
import threading
import weakref
from typing import Any, Callable

_LIVE: "weakref.WeakSet[LatestExecutor]" = weakref.WeakSet()


@atexit.register
def _shutdown_all(timeout: float = 10.0) -> None:
    """At interpreter exit, cancel every running job and let its worker finish.

    A daemon worker still inside a torch kernel when the interpreter tears down can abort the whole
    process ("terminate called without an active exception"); cancelling first lets jobs that check
    their ticket return cleanly.
    """
    for executor in list(_LIVE):
        executor.shutdown(timeout=timeout / max(1, len(_LIVE)))


class Superseded(Exception):
    """Raised by :meth:`Ticket.check` inside a job that a newer request has replaced."""


class Ticket:
    """One submitted request; the job receives it to check for supersession and emit partial results."""

    def __init__(self, executor: "LatestExecutor", generation: int, on_partial: Callable | None):
        self._executor = executor
        self.generation = generation
        self._on_partial = on_partial
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.delivered = False

    @property
    def superseded(self) -> bool:
        return self.cancelled.is_set() or self.generation != self._executor.generation

    def check(self) -> None:
        """Raise :class:`Superseded` if a newer request replaced this one."""
        if self.superseded:
            raise Superseded()

    def emit(self, partial: Any) -> bool:
        """Deliver a partial result (e.g. a coarse heatmap) if this request is still the latest."""
        with self._executor._deliver_lock:
            if self.superseded or self._on_partial is None:
                return False
            self._on_partial(partial)
            return True


class LatestExecutor:
    """A single worker thread running only the newest submitted job.

    Args:
        synchronous: run jobs in the caller's thread (scripts, tests, debugging).

    Example:
        >>> ex = LatestExecutor(synchronous=True)
        >>> seen = []
        >>> t = ex.submit(lambda ticket: 6 * 7, on_result=seen.append)
        >>> seen
        [42]
    """

    def __init__(self, synchronous: bool = False, name: str = "ipynetviz-worker"):
        self.synchronous = synchronous
        self.generation = 0
        self._pending: tuple | None = None
        self._cond = threading.Condition()
        self._deliver_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._running: Ticket | None = None
        self._name = name
        self.delivered_generations: list[int] = []
        _LIVE.add(self)

    def submit(self, job: Callable[[Ticket], Any], on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None,
               on_partial: Callable[[Any], None] | None = None) -> Ticket:
        """Queue ``job(ticket)``; older pending jobs are dropped and the running one is marked superseded."""
        with self._cond:
            self.generation += 1
            ticket = Ticket(self, self.generation, on_partial)
            if self._pending is not None:
                old = self._pending[0]
                old.cancelled.set()
                old.done.set()
            if self._running is not None:
                self._running.cancelled.set()
            self._pending = (ticket, job, on_result, on_error)
            if self.synchronous:
                self._pending = None
            else:
                self._ensure_thread()
                self._cond.notify()
        if self.synchronous:
            self._run(ticket, job, on_result, on_error)
        return ticket

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None:
                    if not self._cond.wait(timeout=30.0):
                        if self._pending is None:
                            self._thread = None
                            return
                ticket, job, on_result, on_error = self._pending
                self._pending = None
                self._running = ticket
            try:
                self._run(ticket, job, on_result, on_error)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _run(self, ticket: Ticket, job, on_result, on_error) -> None:
        try:
            ticket.result = job(ticket)
        except Superseded:
            ticket.done.set()
            return
        except BaseException as err:  # delivered to on_error; never lost silently
            ticket.error = err
        with self._deliver_lock:
            if not ticket.superseded:
                ticket.delivered = True
                self.delivered_generations.append(ticket.generation)
                try:
                    if ticket.error is not None:
                        if on_error is not None:
                            on_error(ticket.error)
                    elif on_result is not None:
                        on_result(ticket.result)
                except Exception as err:  # a broken callback must not kill the worker
                    if on_error is not None and ticket.error is None:
                        on_error(err)
        ticket.done.set()

    def delivering(self):
        """A context in which no result or partial result of this executor is being delivered (a delivery
        in progress finishes first); for callers that read or re-send the state the callbacks write."""
        return self._deliver_lock

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is pending or running (for tests and scripts)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and self._running is None, timeout=timeout)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Drop the pending job, tell the running one it is superseded, and wait for the worker to go idle."""
        with self._cond:
            self.generation += 1  # every existing ticket is now superseded; nothing more is delivered
            if self._pending is not None:
                self._pending[0].cancelled.set()
                self._pending[0].done.set()
                self._pending = None
            if self._running is not None:
                self._running.cancelled.set()
        return self.wait_idle(timeout)
