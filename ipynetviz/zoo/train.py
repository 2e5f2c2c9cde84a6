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
}


def load_split(config: TrainConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images and labels a config trains (``"train"``) or is measured (``"test"``) on."""
    dataset = SPECS[config.name].dataset
    if dataset == "shapes":
        n = config.n_train if split == "train" else config.n_test
        return data.shapes(n, split=split, size=SPECS[config.name].input_size[-1], seed=config.data_seed)
    images, labels = data.digits(split=split, seed=config.data_seed)
    return (images[:config.n_train], labels[:config.n_train]) if split == "train" else (images, labels)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units.

    Computed exactly from each channel's 256-bin histogram: no float copy of the data set.
    """
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(np.ascontiguousarray(images[:, c]).ravel(), minlength=256).astype(np.float64)
        p = counts / counts.sum()
        mean = float(p @ levels)
        means.append(mean)
        stds.append(float(np.sqrt(p @ (levels - mean) ** 2)))
    return means, stds


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float model input ``(x / 255 - mean) / std`` on the images' device."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def _augment(x: torch.Tensor, gen: torch.Generator, symmetries: bool, max_shift: int) -> torch.Tensor:
    """Random flips and transposes (the 8 symmetries of a square) and shifts (black fill) per image."""
    n = len(x)
    if symmetries:
        flags = torch.randint(0, 8, (n,), generator=gen).to(x.device).view(-1, 1, 1, 1)
        x = torch.where((flags & 1).bool(), x.flip(-1), x)
        x = torch.where((flags & 2).bool(), x.flip(-2), x)
        x = torch.where((flags & 4).bool(), x.transpose(-1, -2), x)
    if max_shift > 0:
        h, w = x.shape[-2:]
        s = max_shift
        padded = nn.functional.pad(x, (s, s, s, s))
        dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=gen).to(x.device)
        rows = (torch.arange(h, device=x.device)[None] + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None] + dx[:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    return x


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    conv1, decayed, plain = [], [], []
    for name, p in model.named_parameters():
        if name == "conv1.weight":
            conv1.append(p)
        elif name.endswith("weight"):
            decayed.append(p)
        else:
            plain.append(p)
    return [{"params": conv1, "weight_decay": config.weight_decay_conv1},
            {"params": decayed, "weight_decay": config.weight_decay},
            {"params": plain, "weight_decay": 0.0}]


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
    xt = torch.from_numpy(x_train).to(dev)
    yt = torch.from_numpy(y_train).to(dev)

    torch.manual_seed(config.seed)
    model = BUILDERS[config.name]()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.bias, config.init_bias)
    model = model.to(dev)
    order_gen = torch.Generator().manual_seed(10_000 + config.seed)
    opt = torch.optim.AdamW(_param_groups(model, config), lr=config.lr)
    steps_per_epoch = math.ceil(len(xt) / config.batch_size)
    total = config.epochs * steps_per_epoch
    warmup = max(1, int(config.warmup_epochs * steps_per_epoch))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    for epoch in range(config.epochs):
        perm = torch.randperm(len(xt), generator=order_gen).to(dev)
        running, seen = 0.0, 0
        for start in range(0, len(xt), config.batch_size):
            idx = perm[start:start + config.batch_size]
            xb = normalise(_augment(xt[idx], order_gen, config.symmetries, config.max_shift), mean, std)
            loss = nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
        log(f"  {config.name} seed {config.seed} epoch {epoch + 1}/{config.epochs}: "
            f"loss {running / seen:.4f} ({time.perf_counter() - t0:.0f} s)")
    train_seconds = time.perf_counter() - t0

    model.eval()
    x_eval = normalise(torch.from_numpy(x_test).to(dev), mean, std)
    result = evaluate(model, x_eval, torch.from_numpy(y_test).to(dev))
    metrics = {
        "name": config.name,
        "seed": config.seed,
        "test_accuracy": result.accuracy,
        "test_images": len(x_test),
        "conv1_smoothness": filter_smoothness(model.conv1.weight),
        "dead_units": result.dead_units,
        "units": result.units,
        "mean": mean,
        "std": std,
        "class_names": data.shapes_classes if SPECS[config.name].dataset == "shapes" else data.digits_classes,
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
    return (f"{metrics['name']} seed {metrics['seed']}: test accuracy {100 * metrics['test_accuracy']:.2f}% "
            f"on {metrics['test_images']} fresh test images, conv1 smoothness "
            f"{metrics['conv1_smoothness']:.3f}, dead units {dead} ({metrics['train_seconds']:.0f} s)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULTS), choices=list(DEFAULTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
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
        for seed in args.seeds:
            config = replace(DEFAULTS[name], seed=seed, **overrides)
            model, metrics = train(config, device=args.device)
            if not args.no_save:
                save(model, metrics, args.out)
                if args.pictures is not None and seed == 0:
                    save_filter_grid(model.conv1.weight, args.pictures / f"filters_{name}.png", scale=10, pad=3)
            lines.append(summary(metrics))
            print(lines[-1], flush=True)
    print(f"\nall done in {time.perf_counter() - t0:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
