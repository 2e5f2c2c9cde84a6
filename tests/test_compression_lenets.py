"""Deep Compression results on the shipped LeNets, measured from the files on disk (python -m ipynetviz.zoo.compress)."""
from __future__ import annotations

import json

import pytest
import torch

from ipynetviz import zoo
from ipynetviz.methods import compression as C
from ipynetviz.methods.compression.pipeline import copy_inspector, pruned_path
from ipynetviz.zoo.compress import compressed_path
from ipynetviz.zoo.models import BUILDERS


@pytest.mark.parametrize("name", ["lenet-300-100", "lenet-5"])
def test_shipped_compressed_lenets_meet_the_goal(name):
    path = compressed_path(name)
    record = json.loads(path.with_suffix(".compression.json").read_text())
    dense_insp = zoo.load(name, device="cpu")
    dense_bytes = 4 * sum(p.numel() for p in dense_insp.model.parameters())
    ratio = dense_bytes / path.stat().st_size
    pruned_ratio = dense_bytes / pruned_path(path).stat().st_size
    assert ratio >= 30 and pruned_ratio >= 10, (ratio, pruned_ratio)
    insp = copy_inspector(dense_insp, BUILDERS[name]())
    loaded = C.load_compressed(path, insp)
    x, y = zoo.mnist("test")
    dense = C.AccuracyProbe(dense_insp, x, y).accuracy()
    small = C.AccuracyProbe(insp, x, y).accuracy()
    assert small == record["accuracy"]["reloaded"] and dense == record["accuracy"]["dense"]
    assert dense - small <= 0.005, (dense, small)  # at most 0.5 points of test accuracy lost
    kept = sum(int(m.sum()) for m in loaded.masks.values()) / sum(m.numel() for m in loaded.masks.values())
    assert kept < 0.09  # the paper's ~8% of the weights
    assert loaded.encoded.meta["zoo"] == name
    # the pruning-only file holds the same masks, with 32-bit values
    pruned = C.load_compressed(pruned_path(path), BUILDERS[name]())
    assert all(lc.mode == "raw" for lc in pruned.encoded.layers)
    assert all(torch.equal(pruned.masks[n], loaded.masks[n]) for n in loaded.masks)
