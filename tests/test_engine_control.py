"""One control vocabulary (cancel / progress / callback / callback_every), one batch-size rule, one error family."""
from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest
import torch

from ipynetviz.engine import (
    Inspector,
    LatestExecutor,
    Stop,
    is_cancelled,
    progress_reporter,
)
from ipynetviz.engine.checks import (
    check_batch_size,
    check_pair,
    check_positive_int,
    check_probability,
)
from ipynetviz.engine.errors import InputError, IpynetvizError, SettingError
from ipynetviz.methods import attribution, correspondence, embedding, optimize, units
from tests.conftest import small_cnn


def test_anything_that_says_stop():
    ev = threading.Event()
    flag = {"stop": False}
    assert not is_cancelled(None) and not is_cancelled(ev) and not is_cancelled(lambda: flag["stop"])
    ev.set()
    flag["stop"] = True
    assert is_cancelled(ev) and is_cancelled(lambda: flag["stop"]) and is_cancelled(Stop(None, ev))
    ex = LatestExecutor(synchronous=True)
    seen = []
    ex.submit(lambda ticket: seen.append(is_cancelled(ticket)))
    assert seen == [False]
    with pytest.raises(SettingError, match="cancel must be"):
        is_cancelled(42)


def test_progress_true_callable_or_off():
    calls = []
    with progress_reporter(lambda d, t: calls.append((d, t)), total=2) as report:
        report(1)
        report(2)
    assert calls == [(1, 2), (2, 2)]
    with progress_reporter(False, 3) as report:
        report(3)
    with pytest.raises(SettingError, match="progress must be"):
        progress_reporter("yes", 3)


@pytest.mark.parametrize("check, value, words", [
    (lambda v: check_positive_int(v, "steps"), 0, "steps must be a positive integer"),
    (lambda v: check_positive_int(v, "steps"), True, "steps must be a positive integer"),
    (lambda v: check_positive_int(v, "steps"), 2.0, "steps must be a positive integer"),
    (lambda v: check_pair(v, "window"), (3, 0), "window must be at least 1"),
    (lambda v: check_pair(v, "window"), (3, 4, 5), "pair of ints"),
    (lambda v: check_probability(v), 1.5, r"p must be in \[0, 1\]"),
    (lambda v: check_probability(v), float("nan"), r"p must be in \[0, 1\]"),
    (lambda v: check_batch_size(v), 0, "batch_size must be a positive integer"),
])
def test_validators_name_the_value_and_the_fix(check, value, words):
    with pytest.raises(SettingError, match=words) as info:
        check(value)
    assert isinstance(info.value, InputError) and isinstance(info.value, IpynetvizError)


def test_one_batch_size_rule_everywhere():
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    x = torch.rand(3, 3, 32, 32)
    for call in (lambda b: insp.activations(x, ["conv1"], batch_size=b),
                 lambda b: attribution.saliency(insp, x, 0, batch_size=b),
                 lambda b: attribution.occlusion(insp, x[:1], 0, window=16, stride=16, batch_size=b),
                 lambda b: units.top_patches(insp, x, "conv1", k=2, batch_size=b),
                 lambda b: units.nearest_neighbours(insp, x, 0, "conv1", k=1, batch_size=b)):
        call(None)  # None: the default
        call(2)
        with pytest.raises(SettingError, match="batch_size must be a positive integer"):
            call(0)


LONG_METHODS = [attribution.occlusion, units.top_patches, units.nearest_neighbours, correspondence.compare,
                correspondence.layer_grid, embedding.embed_features, optimize.visualize,
                optimize.invert, optimize.deep_dream, optimize.style_transfer, optimize.adversarial]


@pytest.mark.parametrize("method", LONG_METHODS, ids=lambda m: m.__name__)
def test_long_methods_share_the_control_keywords(method):
    params = inspect.signature(method).parameters
    assert "every" not in params  # the interval between callbacks is called callback_every everywhere
    if "callback" in params:
        assert "callback_every" in params or method is attribution.occlusion
    assert "progress" in params or "cancel" in params or "callback" in params


def test_no_bare_value_errors_from_results_and_render():
    from ipynetviz.render import colorize
    with pytest.raises(IpynetvizError):
        colorize(np.zeros((2, 2)), "no-such-map")


def test_results_share_one_naming_rule_one_render_verb_and_to_numpy():
    """Every method's result type ends in Result; to_numpy() gives an array; pictures come from render()."""
    import dataclasses

    from ipynetviz import methods as M
    results = {name: obj for sub in ("attribution", "units", "embedding", "correspondence", "optimize")
               for name in getattr(M, sub).__all__ if isinstance(obj := getattr(getattr(M, sub), name), type)
               and dataclasses.is_dataclass(obj)}
    for name in results:
        assert name.endswith(("Result", "Options")) or name in ("UnitPatches", "EmbeddingFrame"), name
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    made = [M.saliency(insp, x, 0), M.occlusion(insp, x[:1], 0, window=16, stride=16), M.filters(insp, "conv1"),
            M.top_patches(insp, x, "conv2", k=2), M.nearest_neighbours(insp, x, 0, "conv2", k=2),
            M.visualize(insp, 1, steps=2)]
    for r in made:
        assert isinstance(r.to_numpy(), np.ndarray), type(r).__name__
        pic = r.render(0) if not isinstance(r, (M.FilterResult, M.NeighboursResult)) else (
            r.render() if isinstance(r, M.FilterResult) else None)
        if pic is not None:
            assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[-1] == 3, type(r).__name__
