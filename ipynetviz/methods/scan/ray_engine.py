"""``scan(..., engine="ray")``: the same plan on Ray Data, as its batch-inference guide builds it.

Pipeline: ``range(N)`` -> a CPU stage (tasks) that decodes each batch's files and applies every model's
transform -> a model stage (actors, one model copy each, on GPUs when the cluster has them) that folds the
batch into a fresh :class:`ScanState` and emits it -> the driver merges the states as they stream in.
A batch that Ray runs again after a worker died is merged once (its output is emitted once), so the
merged answer is the in-process one.

Security: Ray's API and dashboard have no authentication of their own by default (CVE-2023-48022,
"ShadowRay"). A Ray that ipynetviz starts on this machine listens on 127.0.0.1 only, starts no dashboard
and sends no usage statistics. Joining a cluster is the caller's explicit choice (``address=``); that
cluster must be protected by its operators (private network, Ray's token authentication).
"""
from __future__ import annotations

import copy
import os
import pickle
from typing import Any

import numpy as np
import torch

from ipynetviz.engine.checks import check_positive, check_positive_int
from ipynetviz.engine.control import is_cancelled, progress_reporter
from ipynetviz.engine.errors import IpynetvizError

from .measures import ScanState, fold_batch

__all__ = ["import_ray", "start_local_ray", "ray_scan"]

INSTALL = "pip install 'ipynetviz[scale]'"


def import_ray():
    """``ray`` with Ray Data, or an ImportError that names the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError(f"engine='ray' needs Ray Data, which is not installed: {INSTALL} "
                          "(or pip install 'ray[data]'); engine='local' needs nothing more") from err
    return ray


def _loopback_environment() -> None:
    # Ray picks the machine's routable address for its servers unless clustering is off; with it off every
    # server (GCS, raylet, workers, agents) binds 127.0.0.1. Children inherit the environment.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report to ray.io: nothing leaves this machine
    from ray._private import ray_constants
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time by services.get_node_ip_address


def start_local_ray(num_cpus: int | None = None, num_gpus: int | None = None, **init_options):
    """Start Ray on this machine, reachable from this machine only (127.0.0.1, no dashboard); idempotent.

    Returns:
        The ``ray`` module, initialised.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    _loopback_environment()
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, dashboard_host="127.0.0.1",
             _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False, **init_options)
    return ray


# ---------------------------------------------------------------- the CPU stage (Ray tasks)
_OBJECTS: dict[str, Any] = {}  # per worker process: shipped objects, fetched once


def _fetched(ref_box):
    ray = import_ray()
    key = ref_box[0].hex()
    if key not in _OBJECTS:
        _OBJECTS[key] = ray.get(ref_box[0])
    return _OBJECTS[key]


def _decode(row: dict, source_box, transforms_box, batch_size: int, n: int) -> dict:
    """Decode one batch of files (row ``chunk``: ids ``chunk * batch_size ...``) and make each model's input.

    Unreadable files become rows flagged ``ok=False`` with the reason, so the model stage sees exactly the
    batches the in-process engine makes (the same images together: a model's float results can depend on
    which images share a batch, and this keeps them bit for bit).
    """
    from ipynetviz.engine.inputs import apply_transform

    source = _fetched(source_box)
    transforms = _fetched(transforms_box)  # [(transform, channels, input_size)] per distinct transform
    start = int(np.asarray(row["chunk"]).reshape(-1)[0]) * batch_size
    ids = np.arange(start, min(start + batch_size, n), dtype=np.int64)
    raw, ok, skipped = source.read(ids)
    good = np.isin(ids, np.asarray(ok, np.int64))
    why = np.array([""] * len(ids), dtype=object)
    for pos, (path, reason) in zip(np.flatnonzero(~good), skipped):  # read() lists failures in id order
        why[pos] = f"{path}\t{reason}"
    out = {"id": ids, "ok": good, "why": why}
    for g, (transform, channels, input_size) in enumerate(transforms):
        if ok:
            x = apply_transform(raw, transform, channels).cpu().numpy().astype(np.float32, copy=False)
            full = np.zeros((len(ids),) + x.shape[1:], np.float32)
            full[good] = x
        else:
            full = np.zeros((len(ids),) + tuple(input_size or (1, 1, 1)), np.float32)
        out[f"x{g}"] = full
    return out


# ---------------------------------------------------------------- the model stage (Ray actors)
class _ScanActor:
    """Holds one copy of each model; each call folds one batch into a new ScanState and emits it pickled."""

    def __init__(self, models_box, plan, groups, device: str, kill_once: str | None = None):
        from ipynetviz.engine import Inspector

        payload = _fetched(models_box)
        self.inspectors = [Inspector(model, transform=transform, device=device, input_size=size)
                           for model, transform, size in payload]
        self.plan, self.groups, self.kill_once = plan, groups, kill_once
        self.calls = 0

    def __call__(self, batch: dict) -> dict:
        self.calls += 1
        if self.kill_once and self.calls == 3 and not os.path.exists(self.kill_once):
            open(self.kill_once, "w").close()  # tests: die once, on this actor's third batch, as a crash would
            os._exit(1)
        state = ScanState(self.plan)
        ok = np.asarray(batch["ok"], bool)
        state.n_files = len(ok)
        state.skipped = [tuple(w.split("\t", 1)) for w in batch["why"][~ok]]
        if ok.any():
            inputs = [torch.from_numpy(np.ascontiguousarray(batch[f"x{g}"][ok])) for g in self.groups]
            fold_batch(state, self.inspectors, self.plan, inputs, np.asarray(batch["id"])[ok])
        return {"state": np.array([pickle.dumps(state.cpu())], dtype=object)}


def _cause(err: BaseException) -> BaseException:
    """The user's error inside a Ray task error (an IpynetvizError names the fix; keep it)."""
    seen = err
    for _ in range(8):
        inner = getattr(seen, "cause", None) or seen.__cause__ or seen.__context__
        if inner is None:
            break
        seen = inner
        if isinstance(seen, IpynetvizError):
            return seen
    return err


def ray_scan(inspectors, plan, source, batch_size: int, progress=False, cancel=None, num_actors: int | None = None,
             num_gpus: float | None = None, address: str | None = None,
             num_cpus: int | None = None, _kill_once: str | None = None):
    """Run the plan on Ray Data; returns (merged ScanState, complete).

    Args:
        num_actors: model-stage actors (default: one per GPU when the cluster has GPUs, else half its CPUs).
        num_gpus: GPUs per actor (default: 1 when the cluster has GPUs, else 0).
        address: an existing Ray cluster to join ("auto" or "host:port"); the caller's explicit choice, since
            Ray itself does not authenticate by default. Without it a loopback-only local Ray is started (or
            the already initialised one is used).
        num_cpus: CPUs for a local Ray that this call starts (default: all).
    """
    ray = import_ray()
    if address is not None:
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
    else:
        start_local_ray(num_cpus=num_cpus)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "raise_original_map_exception"):  # the user's own error (which names its fix), not Ray's wrapper
        ctx.raise_original_map_exception = True
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    per_actor_gpus = check_positive(num_gpus, "num_gpus", allow_zero=True) if num_gpus is not None else \
        (1.0 if gpus else 0.0)
    actors = check_positive_int(num_actors, "num_actors") if num_actors is not None else \
        (max(1, int(gpus / per_actor_gpus)) if per_actor_gpus else max(1, int(resources.get("CPU", 2)) // 2))
    device = "cuda" if per_actor_gpus else "cpu"

    # one input column per distinct transform (two models with the same preprocessing share it)
    transforms, groups = [], []
    for insp in inspectors:
        g = next((i for i, (t, _, _) in enumerate(transforms) if t is insp.transform), None)
        if g is None:
            transforms.append((insp.transform, insp.expected_channels, insp.input_size))
            g = len(transforms) - 1
        groups.append(g)
    models = [(copy.deepcopy(i.model).cpu(), i.transform, i.input_size) for i in inspectors]
    boxes = [[ray.put(obj)] for obj in (source, transforms, models)]

    n = len(source)
    chunks = -(-n // batch_size)
    ds = ray.data.range(chunks, override_num_blocks=chunks).rename_columns({"id": "chunk"})
    ds = ds.map_batches(_decode, fn_kwargs={"source_box": boxes[0], "transforms_box": boxes[1],
                                            "batch_size": batch_size, "n": n},
                        batch_size=1, batch_format="numpy", num_cpus=1)
    ds = ds.map_batches(_ScanActor, fn_constructor_kwargs={"models_box": boxes[2], "plan": plan, "groups": groups,
                                                           "device": device, "kill_once": _kill_once},
                        batch_size=None, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                        num_gpus=per_actor_gpus, num_cpus=1)
    state, complete = ScanState(plan), True
    with progress_reporter(progress, n, "scan (ray)", "img") as report:
        rows = ds.iter_batches(batch_size=1, batch_format="numpy")
        try:
            for out in rows:
                for blob in out["state"]:
                    state.merge(pickle.loads(blob))
                report(state.n_files)
                if is_cancelled(cancel) and state.n_files < n:
                    complete = False
                    break
        except Exception as err:  # noqa: BLE001 - surface the user's error, not Ray's wrapper
            inner = _cause(err)
            if inner is not err:
                raise inner from err
            raise
    return state, complete
