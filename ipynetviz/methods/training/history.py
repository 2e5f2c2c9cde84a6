"""What a run records while it trains: per-step loss, evaluations, layer statistics, histograms.

The training thread appends; views and scripts read copies (``history.steps()``, ``history.to_dict()``)
under one lock, so a reader never sees a half-written row.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np


class History:
    """Growing records of one run.

    Series:
        ``step``: per optimisation step: ``step`` (1-based), ``epoch``, ``loss``, ``accuracy`` (of the batch), ``lr``.
        ``evals``: at evaluation points: ``step``, ``test_loss``, ``test_accuracy``, ``train_loss``, ``train_accuracy``.
        ``layers``: at record points: ``step`` and per parameter ``weight_norm``, ``grad_norm``, ``update_ratio``.
        ``histograms``: at record points: ``step`` and per parameter ``(weight_counts, grad_counts, edges)``.

    Example:
        >>> h = History()
        >>> h.add_step(step=1, epoch=0, loss=2.3, accuracy=0.1, lr=0.01)
        >>> h.to_dict()["loss"].tolist()
        [2.3]
    """

    STEP_KEYS = ("step", "epoch", "loss", "accuracy", "lr")

    def __init__(self):
        self._lock = threading.Lock()
        self._steps: dict[str, list] = {k: [] for k in self.STEP_KEYS}
        self._evals: list[dict] = []
        self._layers: list[dict] = []
        self._histograms: list[dict] = []

    def add_step(self, **row: Any) -> None:
        with self._lock:
            for k in self.STEP_KEYS:
                self._steps[k].append(row[k])

    def add_eval(self, row: dict) -> None:
        with self._lock:
            self._evals.append(dict(row))

    def add_layers(self, row: dict) -> None:
        with self._lock:
            self._layers.append(row)

    def add_histograms(self, row: dict) -> None:
        with self._lock:
            self._histograms.append(row)

    def __len__(self) -> int:
        return len(self._steps["step"])

    def steps(self, start: int = 0) -> dict[str, list]:
        """Per-step series from row ``start`` on (a view polls only what is new)."""
        with self._lock:
            return {k: v[start:] for k, v in self._steps.items()}

    @property
    def evals(self) -> list[dict]:
        with self._lock:
            return list(self._evals)

    @property
    def layers(self) -> list[dict]:
        with self._lock:
            return list(self._layers)

    @property
    def histograms(self) -> list[dict]:
        with self._lock:
            return list(self._histograms)

    def last_eval(self) -> dict | None:
        with self._lock:
            return dict(self._evals[-1]) if self._evals else None

    def to_dict(self) -> dict[str, np.ndarray]:
        """Per-step series as arrays, plus ``eval_<key>`` arrays for the evaluations."""
        with self._lock:
            out = {k: np.asarray(v) for k, v in self._steps.items()}
            keys = sorted({k for row in self._evals for k in row})
            for k in keys:
                out[f"eval_{k}"] = np.asarray([row.get(k, np.nan) for row in self._evals], dtype=float)
            return out


__all__ = ["History"]
