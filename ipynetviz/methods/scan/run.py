"""``scan``: one pass over a data set for several measures at once, in-process or on Ray Data."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ipynetviz.engine.checks import check_batch_size, check_choice
from ipynetviz.engine.control import check_callback_every, check_cancel, is_cancelled, progress_reporter
from ipynetviz.engine.errors import DatasetError, InputError

from .measures import ScanState, compile_plan, fold_batch
from .result import ScanResult, build_result, model_fingerprint
from .source import as_source

__all__ = ["scan"]


def _keeps(what) -> dict:
    from .measures import Correspondence
    items = [what] if not isinstance(what, (list, tuple)) else what
    return {(m.layer_a, m.layer_b): m.keep for m in items if isinstance(m, Correspondence)}


def _no_images(source, state: ScanState) -> DatasetError:
    reasons = "; ".join(f"{p}: {r}" for p, r in state.skipped[:3])
    return DatasetError(f"none of the {state.n_files} files in {source.describe()} could be read as an image "
                        f"({reasons}{' ...' if len(state.skipped) > 3 else ''}); put JPEG or PNG images there")


def _model_error(err: Exception, source, ids) -> InputError:
    names = [source.data.paths[i] for i in ids[:3]] if source.kind == "folder" else [int(i) for i in ids[:3]]
    return InputError(f"the model failed on images {names}{' ...' if len(ids) > 3 else ''}: {err}")


def scan(insp, dataset, what, engine: str = "local", batch_size: int | None = None, progress=False,
         cancel=None, callback=None, callback_every: int = 10, save_to=None, **ray_options) -> ScanResult:
    """Scan a data set once for every measure in ``what``; shards merge exactly, in-process or on Ray.

    Args:
        insp: the Inspector of the model to scan.
        dataset: a folder of images (a path: ImageFolder layout or flat; JPEG/PNG; unreadable files are
            skipped and listed), an :class:`ipynetviz.engine.folder.ImageFolder`, or anything ``as_imageset``
            accepts (uint8 arrays, ``(images, labels)``, the zoo's data, a torch Dataset).
        what: a list of :class:`TopPatches` and :class:`Correspondence` measures.
        engine: "local" (in-process, default) or "ray" (Ray Data: a CPU stage decodes and preprocesses, the
            models run in actors, each batch's state is merged on the driver; see :func:`ray_scan` for
            ``num_actors``, ``num_gpus``, ``address``, ``num_cpus``).
        batch_size: images per forward pass (default: the inspector's).
        progress: True for a tqdm bar, or ``progress(done, total)`` in files.
        cancel: a threading.Event, Ticket, Stop or callable; when set the scan stops after the current batch
            and returns what it has with ``complete=False``.
        callback: ``callback(partial ScanResult)`` every ``callback_every`` batches.
        save_to: a folder to write the result to as dataset examples (only when the scan completes; written
            atomically, so a failed scan or save leaves no folder behind).

    Returns:
        A :class:`ScanResult`: ``top_patches[layer]``, ``correspondence[(layer_a, layer_b)]``, ``skipped``;
        ``.save(folder)`` writes a dataset-examples folder the widgets open without rescanning.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> from ipynetviz.methods.scan import Correspondence, TopPatches
        >>> insp = Inspector(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input_size=(3, 8, 8), device="cpu")
        >>> images = torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8)
        >>> r = scan(insp, images, [TopPatches("1", k=3), Correspondence(insp, "0", "1")])
        >>> r.top_patches["1"].scores.shape, r.correspondence[("0", "1")].correlation_.shape, r.complete
        ((4, 3), (4, 4), True)
    """
    engine = check_choice(engine, "engine", ("local", "ray"))
    inspectors, plan = compile_plan(insp, what)
    bs = check_batch_size(batch_size, default=insp.batch_size)
    check_cancel(cancel)
    every = check_callback_every(callback_every)
    source = as_source(dataset, mode="L" if insp.expected_channels == 1 else "RGB")  # a path: read as the model sees
    model_fp = model_fingerprint(insp)
    keeps = _keeps(what)
    if engine == "ray":
        from .ray_engine import ray_scan
        state, complete = ray_scan(inspectors, plan, source, bs, progress=progress, cancel=cancel, **ray_options)
    else:
        if ray_options:
            raise InputError(f"options {sorted(ray_options)} are for engine='ray'; the local engine takes none")
        state, complete = _local(inspectors, plan, source, bs, progress, cancel, callback, every,
                                 lambda s, c: build_result(insp, source, s, keeps, c, "local", model_fp))
    if state.n_images == 0 and state.n_files and complete:
        raise _no_images(source, state)
    result = build_result(insp, source, state, keeps, complete, engine, model_fp)
    if save_to is not None and complete:
        result.save(save_to)
    return result


class _Inline:
    """ThreadPoolExecutor's submit/result, run at once in this thread."""

    class _Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

        def cancel(self):
            return False

    def submit(self, fn, *args):
        return self._Done(fn(*args))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _local(inspectors, plan, source, bs, progress, cancel, callback, every, partial):
    state = ScanState(plan)
    n = len(source)
    chunks = [np.arange(s, min(s + bs, n)) for s in range(0, n, bs)]
    complete = True
    # files: decode the next batch in a thread while the model runs on this one (Pillow releases the GIL);
    # in-memory images are only indexed, and a thread would just contend for the GIL
    pool = ThreadPoolExecutor(max_workers=1) if source.kind == "folder" else _Inline()
    with pool, progress_reporter(progress, n, "scan", "img") as report:
        ahead = pool.submit(source.read, chunks[0]) if chunks else None
        for j, ids in enumerate(chunks):
            if is_cancelled(cancel):
                complete = False
                break
            raw, ok, skipped = ahead.result()
            ahead = pool.submit(source.read, chunks[j + 1]) if j + 1 < len(chunks) else None
            state.skipped.extend(skipped)
            state.n_files += len(ids)
            if ok:
                try:
                    fold_batch(state, inspectors, plan, [raw], np.asarray(ok))
                except InputError as err:
                    raise _model_error(err, source, ok) from err
                except RuntimeError as err:
                    raise _model_error(err, source, ok) from err
            report(int(ids[-1]) + 1)
            if callback is not None and (j + 1) % every == 0 and state.n_images:
                callback(partial(state, False))
        if ahead is not None:
            ahead.cancel()
    return state, complete
