"""Compress the shipped LeNets with Deep Compression and write the files: ``python -m ipynetviz.zoo.compress``.

Per-layer rates are the paper's (Han et al. 2016, Tables 2 and 3; fc1 of both nets one point more, which
our 4,000 training digits allow): prune, retrain with fixed masks, share weights (8 bits conv, 5 bits fc,
linear init), fine-tune the centroids, Huffman-code. Writes ``<name>-seed0.ipnz`` (the compressed model),
``<name>-seed0-pruned.ipnz`` (pruning only) and ``<name>-seed0.compression.json`` (accuracies, sizes, table). ``--dsd`` runs DSD training instead
(``<name>-seed0.dsd.json``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ipynetviz.methods.compression import deep_compression, dsd
from ipynetviz.methods.training import Augment
from ipynetviz.zoo import data
from ipynetviz.zoo.load import WEIGHTS_DIR, load
from ipynetviz.zoo.models import BUILDERS

RECIPES = {
    "lenet-300-100": {"sparsity": {"fc1": 0.93, "fc2": 0.91, "fc3": 0.74}},
    "lenet-5": {"sparsity": {"conv1": 0.34, "conv2": 0.88, "fc1": 0.93, "fc2": 0.81}},
}
SETTINGS = {"prune_epochs": 15, "quant_epochs": 3, "lr": 1e-3, "optimizer": "adam", "batch_size": 64, "seed": 0}


def compressed_path(name: str, seed: int = 0) -> Path:
    """Where the shipped compressed file of a LeNet lives."""
    return WEIGHTS_DIR / f"{name}-seed{seed}.ipnz"


def compress(name: str, directory: Path = WEIGHTS_DIR, log=print) -> dict:
    """Run the recipe of ``name`` and write its files; returns the record written to the JSON file."""
    t0 = time.perf_counter()
    torch.use_deterministic_algorithms(True, warn_only=True)
    path = Path(directory) / f"{name}-seed0.ipnz"
    result = deep_compression(load(name, device="cpu"), data.mnist("train"), data.mnist("test"),
                              RECIPES[name]["sparsity"], augment=Augment(False, 2), path=path,
                              meta={"zoo": name, "seed": 0}, **SETTINGS)
    record = {"name": name, "accuracy": result.accuracy, "file_bytes": result.saved.file_bytes,
              "pruned_file_bytes": result.pruned_only.file_bytes, "dense_bytes": result.saved.dense_bytes,
              "ratio": result.saved.ratio, "pruned_ratio": result.pruned_only.ratio,
              "kept": result.pruning.kept, "sparsity": RECIPES[name]["sparsity"], "settings": SETTINGS,
              "table": result.table.markdown(name), "seconds": round(time.perf_counter() - t0, 1),
              "torch": torch.__version__}
    path.with_suffix(".compression.json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"{name}: accuracy {result.accuracy}; file {record['file_bytes']:,} bytes = {record['ratio']:.1f}x "
        f"(pruning only {record['pruned_ratio']:.1f}x) in {record['seconds']:.0f} s")
    return record


# DSD (Han et al. 2017): 30% sparsity, first conv kept dense, equal phases; 3 seeds from scratch
DSD_SETTINGS = {"lenet-300-100": {"epochs": 10}, "lenet-5": {"epochs": 5}}


def dsd_record(name: str, directory: Path = WEIGHTS_DIR, log=print) -> dict:
    """Run DSD and its equal-epoch dense baseline over seeds 0-2; write ``<name>-seed0.dsd.json``."""
    t0 = time.perf_counter()
    result = dsd(BUILDERS[name], data.mnist("train"), data.mnist("test"), sparsity=0.3, seeds=(0, 1, 2),
                 augment=Augment(False, 2), **DSD_SETTINGS[name])
    record = {"name": name, "accuracy": {k: v.tolist() for k, v in result.accuracy.items()},
              "summary": result.summary(), "layer": result.layer, "sparsity": result.sparsity,
              "epochs_per_phase": result.epochs,
              "histograms": [[label, counts.tolist(), edges.tolist()] for label, counts, edges in result.histograms],
              "curves": {k: [x.tolist(), y.tolist()] for k, (x, y) in result.curves.items()},
              "seconds": round(time.perf_counter() - t0, 1)}
    (Path(directory) / f"{name}-seed0.dsd.json").write_text(json.dumps(record) + "\n")
    log(f"{name} DSD: " + ", ".join(f"{k} {100 * m:.2f} +- {100 * sd:.2f}%" for k, (m, sd) in record["summary"].items()))
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dsd", action="store_true", help="run DSD (3 seeds) instead of Deep Compression")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.models:
        if args.dsd:
            dsd_record(name, args.out)
        else:
            print(compress(name, args.out)["table"])


if __name__ == "__main__":
    main()
