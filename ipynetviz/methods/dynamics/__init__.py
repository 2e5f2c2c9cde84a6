"""Representations over training and across tasks: learning dynamics, freeze training, transfer.

After Raghu, Gilmer, Yosinski & Sohl-Dickstein, "SVCCA" (NIPS 2017): ``learning_dynamics`` compares every
layer at every checkpoint of a run with the final network, and ``freeze_training`` freezes layers bottom-up;
and Yosinski, Clune, Bengio & Lipson, "How transferable are features in deep neural networks?" (NIPS 2014):
``transfer_experiment`` trains baseA, baseB, BnB, BnB+, AnB and AnB+ for every n. All of them train through
the one loop of :mod:`ipynetviz.methods.training` and measure with :mod:`ipynetviz.methods.correspondence`.
"""
from .freeze import FreezeResult, backward_macs, forward_macs, freeze_training
from .learning import (METHODS, DynamicsResult, canonical_directions, checkpoint_states, default_layers, layer_codes,
                       learning_dynamics)
from .transfer import CONDITIONS, PAPER_FIG2, TransferRecord, TransferResult, split_classes, transfer_experiment

__all__ = ["learning_dynamics", "DynamicsResult", "default_layers", "METHODS", "canonical_directions", "layer_codes",
           "checkpoint_states", "freeze_training", "FreezeResult",
           "forward_macs", "backward_macs", "transfer_experiment", "TransferResult", "TransferRecord",
           "split_classes", "CONDITIONS", "PAPER_FIG2"]
