"""Training: the one loop every lab that changes a model shares (zoo, Training lab, compression, dynamics).

``train(model, data, ...)`` starts a :class:`Run` (background thread, pause/resume/stop, history,
checkpoints, seed); see :mod:`ipynetviz.methods.training.loop` for how hooks, custom updates, parameter
groups and frozen layers plug in.
"""
from .api import OPTIMIZERS, SCHEDULES, lr_factor, make_optimizer, resolve_device, train
from .checkpoints import Checkpoint
from .corrupt import CORRUPTIONS, Corrupted, corrupt
from .data import Augment, Normalise, augment, channel_stats, normalise
from .history import History
from .loop import Run, RunBusyError
from .models import MODELS, build, mlp, with_batch_norm
from .record import Evaluator, LayerRecorder, evaluate, weight_layers
from .resolve import DATASETS, zoo_data

# the verbs, the run and its records, the named choices; helpers (optimiser and schedule makers, data transforms,
# recorders) are importable from their modules
__all__ = ["train", "Run", "RunBusyError", "Checkpoint", "History", "evaluate", "corrupt", "Corrupted", "build",
           "zoo_data", "CORRUPTIONS", "MODELS", "OPTIMIZERS", "SCHEDULES", "DATASETS"]
