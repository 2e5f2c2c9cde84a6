"""Errors that name the bad value and the fix.

Every error the package raises on bad input subclasses :class:`IpynetvizError`, which is a
``ValueError`` so that ``except ValueError`` in user code keeps working.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class IpynetvizError(ValueError):
    """Base class of every input error raised by ipynetviz."""


class LayerNotFoundError(IpynetvizError, LookupError):
    """A layer name that the model does not have.

    The message lists the closest matches and says where all names are listed.
    """

    def __init__(self, name: str, layers: Iterable[str]):
        layers = list(layers)
        self.name = name
        self.layers = layers
        self.suggestions = difflib.get_close_matches(str(name), layers, n=3, cutoff=0.5)
        msg = f"no layer {name!r}"
        if self.suggestions:
            msg += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        msg += f" (insp.layers lists all {len(layers)})"
        super().__init__(msg)

    def __str__(self) -> str:  # LookupError would repr() the message otherwise
        return self.args[0]


class InputError(IpynetvizError):
    """Images of the wrong shape, mode, dtype or content (NaN, empty)."""


class TargetError(IpynetvizError):
    """A class index, unit or channel the model does not have."""


class ModelError(IpynetvizError):
    """The model cannot be used as asked (e.g. it has no ReLU for guided backprop)."""


class DatasetError(IpynetvizError):
    """An empty or malformed data set."""


class OutOfMemoryError(IpynetvizError, MemoryError):
    """The device ran out of memory even at batch size 1."""


class SettingError(InputError):
    """A setting (a step count, a rate, a size, a probability) outside the range it must be in.

    A kind of :class:`InputError` (a bad argument to the call), so ``except InputError`` catches both.
    """


class PartialResultError(IpynetvizError, RuntimeError):
    """A long method failed part-way; ``partial`` holds the result of the work that finished before the failure
    (the failure itself is ``__cause__``), so hours of finished work are not lost with the exception."""

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial


class InputWarning(UserWarning):
    """Input that works but is probably not what was meant (e.g. float pixels in [0, 255] as model input)."""
