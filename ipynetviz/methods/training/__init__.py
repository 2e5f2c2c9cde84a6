"""Training: the one loop every lab that changes a model shares (zoo, Training lab, compression, dynamics).

``train(model, data, ...)`` starts a :class:`Run` (background thread, pause/resume/stop, history,
checkpoints, seed); see :mod:`ipynetviz.methods.training.loop` for how hooks, custom updates, parameter
groups and frozen layers plug in.
"""
from .api import OPTIMIZERS, SCHEDULES, lr_factor, make_optimizer, resolve_device, train
from .checkpoints import Checkpoint
from .data import Augment, Normalise, augment, channel_stats, normalise
from .history import History
from .loop import Run, RunBusyError
from .record import Evaluator, LayerRecorder, evaluate, weight_layers

__all__ = ["train", "Run", "RunBusyError", "Checkpoint", "History", "Evaluator", "LayerRecorder", "evaluate",
           "weight_layers", "make_optimizer", "lr_factor", "resolve_device", "OPTIMIZERS", "SCHEDULES",
           "Augment", "Normalise", "augment", "channel_stats", "normalise"]
