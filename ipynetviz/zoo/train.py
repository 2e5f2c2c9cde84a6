"""Train the teaching CNNs and write their weights and metrics: ``python -m ipynetviz.zoo.train``.

Why the settings below: plain training gives accurate nets whose conv1 filters look like noise.
Decoupled weight decay (AdamW) on conv1 makes a weight survive only where the gradient pushes it
consistently, which leaves smooth edge and colour-blob filters. Applied to every layer the same
strong decay kills half of conv2 (``../shared/RECIPES.md``), so it is strong on conv1 only and
mild elsewhere. Random flips and transposes (all label-preserving here) add variety for free.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ipynetviz.methods.training import data as _data
from ipynetviz.methods.training import train as loop_train
from ipynetviz.zoo import data
from ipynetviz.zoo.models import BUILDERS, SPECS
from ipynetviz.zoo.pictures import save_filter_grid
from ipynetviz.zoo.quality import evaluate, filter_smoothness

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_REPO_DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a teaching model's weights (besides torch's numerics).

    Args:
        name: zoo model name.
        seed: initialisation and data order (the data set itself is fixed by ``data_seed``).
        epochs: passes over the training set.
        batch_size: images per step.
        lr: peak learning rate (linear warm-up over ``warmup_epochs``, then cosine to 0).
        weight_decay_conv1: AdamW decay of conv1's weights (strong: smooth filters).
        weight_decay: AdamW decay of the other weights (biases are never decayed).
        n_train: training images (digits: at most its 1,347-image train split).
        n_test: fresh test images for the reported metrics (shapes only).
        symmetries: random flips and transposes of every batch (only where they keep the label).
        max_shift: random translation of every batch by up to this many pixels (zero fill).
        init_bias: initial conv bias (a small positive value keeps units from starting dead).
        data_seed: seed of the data set (shared by all model seeds).
        warmup_epochs: length of the linear warm-up.
    """

    name: str
    seed: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay_conv1: float
    weight_decay: float
    n_train: int = 12000
    n_test: int = 4000
    symmetries: bool = True
    max_shift: int = 0
    init_bias: float = 0.0
    data_seed: int = 0
    warmup_epochs: float = 0.5


# Chosen by sweeps (GPU, then confirmed on the CPU; see the zoo README section of the report):
# batch 64 learns faster per epoch than 128; conv1 decay 2.0 gives smooth filters at ~94% (1.0: 0.35-0.56
# smoothness; 4.0: 80% accuracy); the rest at 0.05 keeps every layer's dead units under 5%.
DEFAULTS = {
    "shapes-cnn": TrainConfig("shapes-cnn", 0, epochs=12, batch_size=64, lr=2e-3,
                              weight_decay_conv1=2.0, weight_decay=0.05),
    # flipped digits change meaning (2/5, 6/9): shifts only. A long warm-up keeps conv3 units alive
    # (8 of 64 died in the first epochs with a half-epoch warm-up); the blurry 8x8 digits need
    # stronger conv1 decay for smooth filters (2.0 gave 0.15-0.4).
    "digits-cnn": TrainConfig("digits-cnn", 0, epochs=40, batch_size=64, lr=2e-3, weight_decay_conv1=5.0,
                              weight_decay=0.05, symmetries=False, max_shift=2, warmup_epochs=8),
    # Deep Compression's MNIST nets on the 4,000 training digits of zoo.mnist: shifts only (no flips), mild
    # decay everywhere (weight decay makes small weights smaller, which is what magnitude pruning wants)
    "lenet-300-100": TrainConfig("lenet-300-100", 0, epochs=30, batch_size=64, lr=1e-3, weight_decay_conv1=0.05,
                                 weight_decay=0.05, symmetries=False, max_shift=2, warmup_epochs=1),
    "lenet-5": TrainConfig("lenet-5", 0, epochs=30, batch_size=64, lr=1e-3, weight_decay_conv1=0.05,
                           weight_decay=0.05, symmetries=False, max_shift=2, warmup_epochs=1),
}


# the compression lab needs one run of each LeNet (and the package stays a few MB)
SHIPPED_SEEDS = {"lenet-300-100": [0], "lenet-5": [0]}


def load_split(config: TrainConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images and labels a config trains (``"train"``) or is measured (``"test"``) on."""
    dataset = SPECS[config.name].dataset
    if dataset == "shapes":
        n = config.n_train if split == "train" else config.n_test
        return data.shapes(n, split=split, size=SPECS[config.name].input_size[-1], seed=config.data_seed)
    if dataset == "mnist":
        images, labels = data.mnist(split=split, seed=config.data_seed)
        return (images[:config.n_train], labels[:config.n_train]) if split == "train" else (images, labels)
    images, labels = data.digits(split=split, seed=config.data_seed)
    return (images[:config.n_train], labels[:config.n_train]) if split == "train" else (images, labels)


# the zoo trains through the project's one loop; these names stay importable from here
channel_stats = _data.channel_stats
normalise = _data.normalise
_augment = _data.augment


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    conv1, decayed, plain = [], [], []
    for name, p in model.named_parameters():
        if name == "conv1.weight":
            conv1.append(p)
        elif name.endswith("weight"):
            decayed.append(p)
        else:
            plain.append(p)
    groups = [{"params": conv1, "weight_decay": config.weight_decay_conv1},
              {"params": decayed, "weight_decay": config.weight_decay},
              {"params": plain, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]  # (LeNet-300-100 has no conv1)


def train(config: TrainConfig, device: str = "cpu", log=print) -> tuple[nn.Module, dict]:
    """Train one teaching model from scratch and measure it on a fresh test split.

    Args:
        config: the settings.
        device: torch device to train on (the shipped weights were trained on the CPU).
        log: called with one progress line per epoch.

    Returns:
        ``(model, metrics)``: the trained model (eval mode, on the CPU) and a JSON-ready dict with
        test accuracy, conv1 smoothness, dead units per conv layer, normalisation and settings.
    """
    t0 = time.perf_counter()
    torch.use_deterministic_algorithms(True, warn_only=True)
    x_train, y_train = load_split(config, "train")
    x_test, y_test = load_split(config, "test")
    mean, std = channel_stats(x_train)
    dev = torch.device(device)

    def build() -> nn.Module:
        model = BUILDERS[config.name]()
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.bias, config.init_bias)
        return model

    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    total = config.epochs * steps_per_epoch
    warmup = max(1, int(config.warmup_epochs * steps_per_epoch))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    class EpochLog:  # a hook of the loop: one line per epoch with the mean training loss
        running, seen = 0.0, 0

        def after_step(self, run, step):
            self.running += float(run.loss.detach()) * len(run.targets)
            self.seen += len(run.targets)

        def on_epoch_end(self, run, epoch):
            log(f"  {config.name} seed {config.seed} epoch {epoch + 1}/{config.epochs}: "
                f"loss {self.running / self.seen:.4f} ({time.perf_counter() - t0:.0f} s)")
            self.running, self.seen = 0.0, 0

    run = loop_train(build, (x_train, y_train), epochs=config.epochs, batch_size=config.batch_size,
                     optimizer=lambda groups: torch.optim.AdamW(groups, lr=config.lr),
                     param_groups=lambda model: _param_groups(model, config), schedule=schedule,
                     transform=_data.Normalise(mean, std),
                     augment=_data.Augment(config.symmetries, config.max_shift), hooks=[EpochLog()],
                     seed=config.seed, device=dev, background=False)
    model = run.model
    train_seconds = time.perf_counter() - t0

    model.eval()
    x_eval = normalise(torch.from_numpy(x_test).to(dev), mean, std)
    result = evaluate(model, x_eval, torch.from_numpy(y_test).to(dev))
    metrics = {
        "name": config.name,
        "seed": config.seed,
        "test_accuracy": result.accuracy,
        "test_images": len(x_test),
        "conv1_smoothness": filter_smoothness(model.conv1.weight) if hasattr(model, "conv1") else None,
        "dead_units": result.dead_units,
        "units": result.units,
        "mean": mean,
        "std": std,
        "class_names": data.shapes_classes if SPECS[config.name].dataset == "shapes" else data.digits_classes,
        "dataset": SPECS[config.name].dataset,
        "input_size": list(SPECS[config.name].input_size),
        "train_seconds": round(train_seconds, 1),
        "device": str(dev),
        "torch": torch.__version__,
        "settings": asdict(config),
    }
    return model.cpu(), metrics


def save(model: nn.Module, metrics: dict, directory: Path = WEIGHTS_DIR) -> Path:
    """Write ``<name>-seed<k>.pt`` (a plain state_dict) and ``<name>-seed<k>.json`` (metrics)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{metrics['name']}-seed{metrics['seed']}"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, directory / f"{stem}.pt")
    (directory / f"{stem}.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return directory / f"{stem}.pt"


def summary(metrics: dict) -> str:
    """One line per model: accuracy, smoothness, dead units per conv layer."""
    dead = ", ".join(f"{n} {d}/{metrics['units'][n]}" for n, d in metrics["dead_units"].items())
    smooth = metrics["conv1_smoothness"]
    smooth = "n/a" if smooth is None else f"{smooth:.3f}"
    return (f"{metrics['name']} seed {metrics['seed']}: test accuracy {100 * metrics['test_accuracy']:.2f}% "
            f"on {metrics['test_images']} fresh test images, conv1 smoothness "
            f"{smooth}, dead units {dead} ({metrics['train_seconds']:.0f} s)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULTS), choices=list(DEFAULTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="default: the shipped seeds (0 and 1; the LeNets: 0)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where weights and metrics go")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-save", action="store_true", help="only print the metrics")
    parser.add_argument("--pictures", type=Path, default=_REPO_DOCS if _REPO_DOCS.is_dir() else None,
                        help="folder for filters_<name>.png of seed 0 (default: the repository's docs/)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="override TrainConfig fields, e.g. --set epochs=8 weight_decay_conv1=1.0")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(DEFAULTS["shapes-cnn"], key))
        overrides[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    t0 = time.perf_counter()
    lines = []
    for name in args.models:
        for seed in args.seeds or SHIPPED_SEEDS.get(name, [0, 1]):
            config = replace(DEFAULTS[name], seed=seed, **overrides)
            model, metrics = train(config, device=args.device)
            if not args.no_save:
                save(model, metrics, args.out)
                if args.pictures is not None and seed == 0 and hasattr(model, "conv1"):
                    save_filter_grid(model.conv1.weight, args.pictures / f"filters_{name}.png", scale=10, pad=3)
            lines.append(summary(metrics))
            print(lines[-1], flush=True)
    print(f"\nall done in {time.perf_counter() - t0:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
