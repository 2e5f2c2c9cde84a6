"""Dataset-examples folders: a scan saved to disk, opened again without rescanning.

Layout (versioned by the model's and the data set's fingerprints, written atomically)::

    folder/
      index.json                        format, version, fingerprints, data set, counts, skipped files, contents
      top_patches/<layer>.npz           per unit: scores, image ids, positions, boxes; the pictures they come from
      crops/<layer>/unit_<c>.png        per unit: its k crops side by side, best first
      moments/<layer_a>--<layer_b>.npz  the float64 moments behind correlation, SVCCA/PWCCA and CKA

The folder is first written under a hidden temporary name beside it and renamed into place at the end, so a
scan or a save that fails leaves no half-written folder. ``open_examples`` reads only ``index.json`` and the
small arrays; crops come from the stored pictures on demand.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ipynetviz.engine.errors import DatasetError, IpynetvizError
from ipynetviz.engine.receptive_field import ReceptiveField

from ..correspondence.moments import StreamingMoments
from ..units.patches import TopPatchesResult

__all__ = ["save_examples", "open_examples", "DatasetExamples", "ExamplesMismatchError", "FORMAT", "VERSION"]

FORMAT = "ipynetviz-dataset-examples"
VERSION = 1
_MOMENTS = ("mean_a", "m2_a", "mean_b", "m2_b", "m2_ab")


class ExamplesMismatchError(IpynetvizError):
    """A dataset-examples folder made by another model (or from another data set) than the one given."""


def _safe(name: str) -> str:
    """A layer name as a file name ('layer1.0.conv1' stays readable; '/' and the like do not survive)."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def _crop_strip(result: TopPatchesResult, unit: int) -> np.ndarray:
    crops = result.crops(unit)  # (k, C, h, w)
    strip = np.concatenate(list(crops), axis=2) if len(crops) else np.zeros((3, 1, 1), np.uint8)
    strip = strip.transpose(1, 2, 0)
    return strip[:, :, 0] if strip.shape[2] == 1 else strip


def save_examples(result, folder, crops: bool = True, overwrite: bool = True) -> Path:
    """Write a :class:`~ipynetviz.methods.scan.ScanResult` as a dataset-examples folder, atomically.

    Args:
        result: a complete scan's result.
        folder: the folder to create (replaced when it exists and ``overwrite``; it must be a dataset-examples
            folder then).
        crops: also write each unit's crops as a PNG strip (what a file browser or a web page shows).

    Returns:
        The folder's path.
    """
    from PIL import Image

    folder = Path(folder).expanduser()
    if not result.complete:
        raise DatasetError("this scan was stopped before the end (complete=False); save only complete scans: "
                           "run scan(...) again without cancelling")
    if folder.exists():
        if not overwrite:
            raise DatasetError(f"{str(folder)!r} exists; pass overwrite=True or another folder")
        if not (folder / "index.json").is_file():
            raise DatasetError(f"{str(folder)!r} exists and is not a dataset-examples folder (no index.json); "
                               "pick a new folder name so nothing else is overwritten")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        index = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "model_fingerprint": result.model_fingerprint, "dataset_fingerprint": result.dataset_fingerprint,
                 "dataset": result.dataset, "n_images": result.n_images, "n_files": result.n_files,
                 "engine": result.engine, "skipped": [list(s) for s in result.skipped], "top_patches": {},
                 "correspondence": []}
        if result.labels is not None:
            np.save(tmp / "labels.npy", np.asarray(result.labels))
            index["labels"] = "labels.npy"
        for layer, r in result.top_patches.items():
            name = _safe(layer)
            (tmp / "top_patches").mkdir(exist_ok=True)
            f = r.field
            arrays = {"channels": r.channels, "scores": r.scores, "image_indices": r.image_indices,
                      "positions": r.positions, "boxes": r.boxes, "images": r.images, "image_slots": r.image_slots}
            np.savez(tmp / "top_patches" / f"{name}.npz", **arrays)
            entry = {"file": f"top_patches/{name}.npz", "k": int(r.k), "units": int(len(r.channels)),
                     "distinct_images": bool(r.distinct_images), "pad_value": int(r.pad_value), "note": r.note,
                     "field": None if f is None else {"size": _plain(f.size), "stride": _plain(f.stride),
                                                      "offset": _plain(f.offset), "exact": bool(f.exact)}}
            if crops:
                d = tmp / "crops" / name
                d.mkdir(parents=True)
                for row, unit in enumerate(r.channels):
                    Image.fromarray(_crop_strip(r, int(unit))).save(d / f"unit_{int(unit):04d}.png")
                entry["crops"] = f"crops/{name}"
            index["top_patches"][layer] = entry
        for (la, lb), acc in result.moments.items():
            (tmp / "moments").mkdir(exist_ok=True)
            fname = f"moments/{_safe(la)}--{_safe(lb)}.npz"
            sums = {k: v for k, v in acc.result().items() if k in _MOMENTS}
            np.savez(tmp / fname, n_samples=np.int64(acc.n_samples), **sums)
            index["correspondence"].append({"layer_a": la, "layer_b": lb, "file": fname, "within": bool(acc.within),
                                            "full_a": bool(acc.full_a), "full_b": bool(acc.full_b)})
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
        if folder.exists():  # swap: the old folder goes only once the new one is complete
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / "x")
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


class DatasetExamples:
    """An opened dataset-examples folder: the saved top patches and correspondences, read lazily.

    Attributes:
        folder, index (the parsed index.json), model_fingerprint, dataset_fingerprint, layers (with top
        patches), pairs (layer pairs with moments), skipped, n_images.
    """

    def __init__(self, folder, index: dict):
        self.folder = Path(folder)
        self.index = index
        self.model_fingerprint = index["model_fingerprint"]
        self.dataset_fingerprint = index["dataset_fingerprint"]
        self.layers = list(index["top_patches"])
        self.pairs = [(e["layer_a"], e["layer_b"]) for e in index["correspondence"]]
        self.skipped = tuple(tuple(s) for s in index["skipped"])
        self.n_images = int(index["n_images"])
        self.labels = np.load(self.folder / index["labels"]) if index.get("labels") else None
        self._cache: dict = {}

    def __repr__(self) -> str:
        return (f"DatasetExamples({str(self.folder)!r}, images={self.n_images}, layers={self.layers}, "
                f"pairs={self.pairs})")

    def top_patches(self, layer: str) -> TopPatchesResult:
        """The saved :class:`TopPatchesResult` of ``layer`` (crops cut from the stored pictures)."""
        if layer not in self.index["top_patches"]:
            raise DatasetError(f"{str(self.folder)!r} has no top patches of layer {layer!r} (it has "
                               f"{self.layers}); scan it with TopPatches([{layer!r}])")
        if ("top", layer) not in self._cache:
            e = self.index["top_patches"][layer]
            with np.load(self.folder / e["file"]) as z:
                a = {k: z[k] for k in z.files}
            f = e["field"]
            field_ = None if f is None else ReceptiveField(size=_tup(f["size"]), stride=_tup(f["stride"]),
                                                           offset=_tup(f["offset"]), exact=f["exact"])
            self._cache["top", layer] = TopPatchesResult(
                layer=layer, k=e["k"], channels=a["channels"], scores=a["scores"], image_indices=a["image_indices"],
                positions=a["positions"], boxes=a["boxes"], field=field_, images=a["images"],
                image_slots=a["image_slots"], distinct_images=e["distinct_images"], pad_value=e["pad_value"],
                note=e["note"])
        return self._cache["top", layer]

    def moments(self, layer_a: str, layer_b: str) -> StreamingMoments:
        """The saved float64 moments of (layer_a, layer_b), ready to merge with more shards."""
        entry = next((e for e in self.index["correspondence"] if (e["layer_a"], e["layer_b"]) == (layer_a, layer_b)),
                     None)
        if entry is None:
            raise DatasetError(f"{str(self.folder)!r} has no moments of ({layer_a!r}, {layer_b!r}) (it has "
                               f"{self.pairs}); scan it with Correspondence(other, {layer_a!r}, {layer_b!r})")
        m = StreamingMoments(entry["full_a"], entry["full_b"])
        import torch
        with np.load(self.folder / entry["file"]) as z:
            m.n_samples = int(z["n_samples"])
            for name in _MOMENTS:
                if name in z.files:
                    setattr(m, name, torch.from_numpy(z[name]))
        m.within, m.device = entry["within"], torch.device("cpu")
        return m

    def correspondence(self, layer_a: str, layer_b: str, keep=0.99):
        """What ``compare`` reports for (layer_a, layer_b), from the saved moments (milliseconds)."""
        if ("corr", layer_a, layer_b) not in self._cache:
            from .result import correspondence_from_moments
            self._cache["corr", layer_a, layer_b] = correspondence_from_moments(
                self.moments(layer_a, layer_b), layer_a, layer_b, self.n_images, keep)
        return self._cache["corr", layer_a, layer_b]

    def check_model(self, insp) -> "DatasetExamples":
        """Raise :class:`ExamplesMismatchError` unless ``insp``'s model made this folder."""
        from .result import model_fingerprint
        got = model_fingerprint(insp)
        if got != self.model_fingerprint:
            raise ExamplesMismatchError(
                f"{str(self.folder)!r} was made by another model (fingerprint {self.model_fingerprint[:12]}, "
                f"this one is {got[:12]}: other weights, architecture or input size); scan this model again, "
                "scan(insp, dataset, what, save_to=folder), or open the folder with the model that made it")
        return self


def _plain(v):
    """A field's size/stride/offset (ints or floats, or pairs of them) as JSON values."""
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return int(v) if float(v).is_integer() else float(v)


def _tup(v):
    return tuple(v) if isinstance(v, list) else v


def open_examples(folder, insp=None, dataset=None) -> DatasetExamples:
    """Open a dataset-examples folder; with ``insp`` (and ``dataset``) check they are the ones it was made from.

    Args:
        folder: a folder written by ``ScanResult.save`` / ``scan(..., save_to=...)``.
        insp: the model's Inspector; a different model raises :class:`ExamplesMismatchError` naming the fix.
        dataset: the data set; a different one (by fingerprint) raises too.

    Returns:
        :class:`DatasetExamples`.
    """
    if isinstance(folder, DatasetExamples):
        ex = folder
    else:
        folder = Path(folder).expanduser()
        path = folder / "index.json"
        if not path.is_file():
            raise DatasetError(f"{str(folder)!r} is not a dataset-examples folder (no index.json); make one with "
                               "scan(insp, dataset, what, save_to=folder)")
        index = json.loads(path.read_text())
        if index.get("format") != FORMAT or int(index.get("version", 0)) > VERSION:
            raise DatasetError(f"{str(folder)!r} holds format {index.get('format')!r} version {index.get('version')}; "
                               f"this ipynetviz reads {FORMAT!r} up to version {VERSION}: upgrade ipynetviz")
        ex = DatasetExamples(folder, index)
    if insp is not None:
        ex.check_model(insp)
    if dataset is not None:
        from .source import as_source
        got = as_source(dataset).fingerprint()
        if got != ex.dataset_fingerprint:
            raise ExamplesMismatchError(f"{str(ex.folder)!r} was made from another data set ({ex.index['dataset']}); "
                                        "pass the data set it was made from, or scan this one again")
    return ex
