"""Compare a ranked result with a brute-force ranking without letting ties or near-ties decide the test.

Two candidates whose scores differ by less than float noise (a duplicate image computed in another batch,
ReLU zeros) may come out in either order, and either may take the last of k places. So a ranking is right
when its scores match the reference's k best, and each entry is one of the reference candidates whose score
ties with the entry's score within the tolerance.
"""
from __future__ import annotations

import numpy as np


def assert_same_ranking(ids, scores, ref_ids, ref_scores, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """``ids``/``scores``: our k entries, best first. ``ref_ids``/``ref_scores``: the full reference, best first.

    Ids may be ints or tuples (image, y, x). Scores are compared with ``rtol``/``atol``; at each rank our id must
    be among the reference ids whose score is within tolerance of ours, and our ids must be distinct.
    """
    ids = [tuple(i) if isinstance(i, (list, tuple, np.ndarray)) else int(i) for i in ids]
    ref_ids = [tuple(i) if isinstance(i, (list, tuple, np.ndarray)) else int(i) for i in ref_ids]
    scores, ref_scores = np.asarray(scores, np.float64), np.asarray(ref_scores, np.float64)
    k = len(ids)
    assert len(ref_ids) >= k, f"the reference has {len(ref_ids)} candidates, fewer than {k}"
    np.testing.assert_allclose(scores, ref_scores[:k], rtol=rtol, atol=atol)
    assert len(set(ids)) == k, f"repeated entries in {ids}"
    for rank, (i, s) in enumerate(zip(ids, scores)):
        tied = {r for r, rs in zip(ref_ids, ref_scores) if abs(rs - s) <= atol + rtol * abs(s)}
        assert i in tied, f"rank {rank}: {i} (score {s}) is not among the reference's candidates at that score {tied}"
