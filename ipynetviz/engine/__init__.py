"""The inspection engine: one :class:`Inspector` per model, shared by every method and widget.

Importing this package never imports ipywidgets, bqplot or anywidget.
"""
from .cache import ResultCache, fingerprint
from .dataset import ImageSet, as_imageset
from .errors import (DatasetError, InputError, IpynetvizError, LayerNotFoundError, ModelError, OutOfMemoryError,
                     SettingError, TargetError)
from .control import Stop, is_cancelled, progress_reporter
from .executor import LatestExecutor, Superseded, Ticket
from .hooks import HookSession, hooks_left
from .inputs import Preprocess
from .inspector import Inspector, LayerInfo, resolve_device
from .receptive_field import ReceptiveField, measure_receptive_field, receptive_fields
from .selection import Selection
from .targets import Class, Unit

__all__ = [
    "Inspector", "LayerInfo", "ReceptiveField", "receptive_fields", "measure_receptive_field", "Preprocess", "ImageSet", "as_imageset", "Selection", "LatestExecutor", "Ticket",
    "Superseded", "ResultCache", "fingerprint", "HookSession", "hooks_left", "Class", "Unit", "resolve_device",
    "IpynetvizError", "LayerNotFoundError", "InputError", "TargetError", "ModelError", "DatasetError",
    "OutOfMemoryError", "SettingError", "Stop", "is_cancelled", "progress_reporter",
]
