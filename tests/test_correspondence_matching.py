"""Semi- and bipartite matching of units against brute force, with dead units and rectangular matrices."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from ipynetviz.engine.errors import InputError
from ipynetviz.methods.correspondence import bipartite_matching, correlation, semi_matching


def brute_force_best_total(c: np.ndarray) -> float:
    """Largest sum over all one-to-one pairings of rows with columns (rows <= columns)."""
    rows, cols = c.shape
    best = -np.inf
    for perm in itertools.permutations(range(cols), rows):
        best = max(best, sum(c[i, j] for i, j in enumerate(perm)))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_bipartite_total_is_the_brute_force_maximum(seed):
    rng = np.random.default_rng(seed)
    c = np.tanh(rng.normal(size=(6, 6)))
    m = bipartite_matching(c)
    assert m.kind == "bipartite" and m.pairs.shape == (6, 2)
    assert sorted(m.pairs[:, 1].tolist()) == list(range(6))          # one-to-one
    np.testing.assert_allclose(m.total, brute_force_best_total(c), atol=1e-12)
    np.testing.assert_array_equal(m.matched_corr, c[m.pairs[:, 0], m.pairs[:, 1]])


def test_rectangular_matrices_leave_the_surplus_unmatched():
    rng = np.random.default_rng(7)
    c = np.tanh(rng.normal(size=(4, 7)))
    m = bipartite_matching(c)
    assert m.pairs.shape == (4, 2) and m.unmatched_a.size == 0 and m.unmatched_b.size == 3
    np.testing.assert_allclose(m.total, brute_force_best_total(c), atol=1e-12)
    mt = bipartite_matching(c.T)
    assert mt.pairs.shape == (4, 2) and mt.unmatched_a.size == 3
    np.testing.assert_allclose(mt.total, m.total, atol=1e-12)


def test_semi_matching_is_the_row_argmax_and_may_repeat():
    c = np.array([[0.1, 0.9, 0.3], [0.2, 0.8, 0.1], [0.7, 0.0, -0.5]])
    s = semi_matching(c)
    assert s.pairs.tolist() == [[0, 1], [1, 1], [2, 0]]
    np.testing.assert_array_equal(s.matched_corr, [0.9, 0.8, 0.7])
    b = bipartite_matching(c)
    assert b.pairs.tolist() == [[0, 2], [1, 1], [2, 0]]    # 0.3 + 0.8 + 0.7 beats 0.9 + 0.1 + 0.7
    np.testing.assert_allclose(b.total, brute_force_best_total(c))
    assert s.total >= b.total                 # semi relaxes the one-to-one constraint
    rng = np.random.default_rng(3)
    big = np.tanh(rng.normal(size=(9, 5)))
    loop = [max(range(5), key=lambda j: big[i, j]) for i in range(9)]
    assert semi_matching(big).pairs[:, 1].tolist() == loop


def test_dead_units_take_part_in_neither_matching():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 4))
    a = np.c_[z, np.zeros(500)]                             # unit 4 of A is dead
    b = np.c_[np.ones(500), z[:, ::-1] + 0.3 * rng.normal(size=(500, 4))]   # unit 0 of B is constant
    r = correlation(a, b)
    for match in (semi_matching(r), bipartite_matching(r)):
        assert 4 not in match.pairs[:, 0] and 0 not in match.pairs[:, 1]
        assert not np.isnan(match.matched_corr).any()
        assert match.pairs.tolist() == [[0, 4], [1, 3], [2, 2], [3, 1]]
        assert match.count_above(0.9) == 4
    assert bipartite_matching(r).unmatched_a.tolist() == [4]
    assert bipartite_matching(r).unmatched_b.tolist() == [0]
    everything_dead = np.full((3, 3), np.nan)
    assert bipartite_matching(everything_dead).pairs.shape == (0, 2)
    assert semi_matching(everything_dead).pairs.shape == (0, 2)


def test_order_puts_pairs_on_the_diagonal_best_first():
    rng = np.random.default_rng(5)
    c = np.tanh(rng.normal(size=(5, 6)) * 2)
    c[2] = np.nan
    m = bipartite_matching(c)
    rows, cols = m.order()
    assert sorted(rows.tolist()) == list(range(5)) and sorted(cols.tolist()) == list(range(6))
    reordered = c[np.ix_(rows, cols)]
    k = len(m.pairs)
    np.testing.assert_array_equal(np.diag(reordered)[:k], m.sorted_corr())
    assert np.all(np.diff(m.sorted_corr()) <= 0)
    assert rows[-1] == 2  # the dead unit comes last


def test_bad_matrices_raise():
    with pytest.raises(InputError, match="matrix"):
        bipartite_matching(np.zeros(4))
    with pytest.raises(InputError, match="inf"):
        semi_matching(np.array([[np.inf, 0.0]]))
