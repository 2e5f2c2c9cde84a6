"""Ready-to-use inspectors: the shipped teaching CNNs, and torchvision models when their weights are local."""
from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ipynetviz.engine import Inspector, Preprocess
from ipynetviz.engine.errors import IpynetvizError
from ipynetviz.zoo.models import BUILDERS, SPECS

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TEACHING_MODELS = tuple(SPECS)
# torchvision architectures offered by name (any other torchvision classifier name works too)
TORCHVISION_MODELS = ("alexnet", "vgg11", "vgg16", "resnet18", "resnet50", "googlenet", "squeezenet1_1",
                      "mobilenet_v3_small")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def available() -> list[str]:
    """Names :func:`load` accepts: the teaching models first, then torchvision architectures.

    Example:
        >>> available()[:2]
        ['shapes-cnn', 'digits-cnn']
    """
    return list(TEACHING_MODELS) + list(TORCHVISION_MODELS)


def _torchvision_names() -> list[str]:
    from torchvision import models

    return list(models.list_models(module=models))


def _unknown(name: str) -> IpynetvizError:
    names = available()
    candidates = list(dict.fromkeys(names + _torchvision_names()))
    close = difflib.get_close_matches(str(name), candidates, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return IpynetvizError(f"unknown model {name!r}{hint} (zoo.available() lists: {', '.join(names)})")


def weights_path(name: str, seed: int = 0) -> Path:
    """Where the shipped weights of teaching model ``name`` trained with ``seed`` live."""
    return WEIGHTS_DIR / f"{name}-seed{int(seed)}.pt"


def shipped_seeds(name: str) -> list[int]:
    """The seeds of ``name`` whose weights ship with the package."""
    return sorted(int(p.stem.rsplit("seed", 1)[1]) for p in WEIGHTS_DIR.glob(f"{name}-seed*.pt"))


def metrics(name: str, seed: int = 0) -> dict:
    """The training record of a shipped teaching model: accuracy, smoothness, normalisation, settings.

    Args:
        name: ``"shapes-cnn"`` or ``"digits-cnn"``.
        seed: which of the shipped seeds.

    Returns:
        The dict ``python -m ipynetviz.zoo.train`` wrote next to the weights.

    Example:
        >>> metrics("shapes-cnn")["class_names"][:3]
        ['circle', 'square', 'triangle']
    """
    path = _teaching_path(name, seed).with_suffix(".json")
    return json.loads(path.read_text())


def _teaching_path(name: str, seed: int) -> Path:
    if name not in TEACHING_MODELS:
        raise _unknown(name)
    path = weights_path(name, seed)
    if not path.exists():
        raise IpynetvizError(
            f"no shipped weights for {name!r} seed {seed} ({path.name} is missing); shipped seeds: "
            f"{shipped_seeds(name) or 'none'}. Run `python -m ipynetviz.zoo.train` to (re)create them")
    return path


def load_teaching_model(name: str, seed: int = 0) -> tuple[nn.Module, dict]:
    """The trained teaching network (eval mode, CPU) and its metrics dict, without an inspector."""
    path = _teaching_path(name, seed)
    info = metrics(name, seed)
    model = BUILDERS[name](num_classes=len(info["class_names"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), info


def _load_torchvision(name: str, pretrained: bool, seed: int) -> tuple[nn.Module, list[str]]:
    from torchvision import models

    if name not in _torchvision_names():
        raise _unknown(name)
    if not pretrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = models.get_model(name, weights=None)
        classes = [str(i) for i in range(_num_outputs(model))]
        return model.eval(), classes
    weights = models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not cached.exists():
        raise IpynetvizError(
            f"pretrained weights for {name!r} are not available offline (looked for {cached}). "
            f"Put the torchvision checkpoint there (e.g. run `torchvision.models.get_model({name!r}, "
            f"weights='DEFAULT')` once with internet), use pretrained=False for random weights, or load a "
            f"teaching model that ships with ipynetviz: {', '.join(repr(t) for t in TEACHING_MODELS)}")
    model = models.get_model(name, weights=weights)
    return model.eval(), list(weights.meta["categories"])


def _num_outputs(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    return last.out_features if isinstance(last, nn.Linear) else last.out_channels


def load(name: str, seed: int = 0, pretrained: bool = True, device: Any = "auto") -> Inspector:
    """Return a ready :class:`~ipynetviz.engine.Inspector` over a zoo model.

    ``"shapes-cnn"`` and ``"digits-cnn"`` are small CNNs trained on :func:`~ipynetviz.zoo.shapes` and
    :func:`~ipynetviz.zoo.digits`; their weights ship with the package (seeds 0 and 1: the same data,
    different initialisation and data order). A torchvision name (``"resnet18"``, ``"alexnet"``,
    ``"vgg16"``, ...) builds that architecture; with ``pretrained=True`` its ImageNet weights are used
    only if they are already in torch's hub cache, as nothing is ever downloaded here.

    Args:
        name: one of :func:`available` (or any torchvision classifier name).
        seed: teaching models: which shipped training run; torchvision with ``pretrained=False``:
            the seed of the random initialisation.
        pretrained: torchvision only: ImageNet weights (True) or random ones (False).
        device: passed to the inspector (``"auto"``: CUDA when available).

    Returns:
        An inspector whose transform takes uint8 images (or PIL) to the model's normalised input,
        with class names and input size set.

    Example:
        >>> insp = load("shapes-cnn", seed=0)
        >>> insp.layers[:3], insp.class_names[:2]
        (['conv1', 'relu1', 'pool1'], ['circle', 'square'])
    """
    if name in TEACHING_MODELS:
        model, info = load_teaching_model(name, seed)
        transform = Preprocess(info["mean"], info["std"])
        return Inspector(model, transform=transform, device=device, class_names=info["class_names"],
                         input_size=tuple(info["input_size"]))
    model, classes = _load_torchvision(name, pretrained, seed)
    return Inspector(model, transform=Preprocess(IMAGENET_MEAN, IMAGENET_STD, size=(224, 224)), device=device,
                     class_names=classes, input_size=(3, 224, 224))
