"""judges.aggregate: the exact DGR dynamic programme against brute force, known small cases, every method on
clear preferences, Elo's order independence, NaN handling and input validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import judges.aggregate as agg
from judges.aggregate import (
    METHODS,
    aggregate,
    bradley_terry,
    brute_force_fas,
    copeland,
    dgr,
    dgr_graph,
    elo,
    minimum_feedback_arc_set,
    order_cost,
    rank_order,
    win_rate,
)
from judges.base import Judge


def matrix(upper: np.ndarray) -> np.ndarray:
    """Full P from its strict upper triangle (P[j, i] = 1 - P[i, j]; NaN stays NaN)."""
    U = np.triu(upper, 1)
    P = U + np.tril(1.0 - U.T, -1)
    np.fill_diagonal(P, np.nan)
    return P


def from_strengths(s) -> np.ndarray:
    s = np.asarray(s, dtype=float)
    P = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :])))
    np.fill_diagonal(P, np.nan)
    return P


def transitive(order: list[int], p: float = 1.0) -> np.ndarray:
    """order[0] beats everyone after it with probability p, and so on down."""
    n = len(order)
    P = np.full((n, n), np.nan)
    for a, i in enumerate(order):
        for j in order[a + 1:]:
            P[i, j], P[j, i] = p, 1.0 - p
    return P


def random_tournament(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random P with clear wins, exact ties (0.5), near-ties and missing pairs (NaN)."""
    values = rng.choice([0.0, 0.1, 0.3, 0.5, 0.5 + 1e-9, 0.7, 0.95, 1.0, np.nan], size=(n, n))
    return matrix(values)


def net_wins_from(W: np.ndarray, order: list[int]) -> np.ndarray:
    """Test-side DGR score: keep edges pointing forward in `order`, and both halves of a tie (equal
    weight both ways: net 0 whatever the order); net weighted wins / (n - 1)."""
    n = len(W)
    pos = {v: k for k, v in enumerate(order)}
    out = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i != j and W[i, j] == W[j, i]:
                continue  # a tie (or no edge): half a win each way nets out
            if i != j and pos[i] < pos[j]:
                out[i] += W[i, j]
                out[j] -= W[i, j]
    return out / (n - 1)


# ---------------------------------------------------------------- exact DP against brute force


@pytest.mark.parametrize("n", range(8))
def test_dp_matches_brute_force_on_random_weight_matrices(n):
    rng = np.random.default_rng(100 + n)
    for trial in range(60):
        if trial % 2:  # few distinct weights: many equally good orders, so the tie-break is exercised
            W = rng.choice([0.0, 0.5, 1.0, 2.0], size=(n, n)) * (rng.random((n, n)) < 0.6)
        else:
            W = rng.random((n, n)) * (rng.random((n, n)) < 0.7)
        order, removed = minimum_feedback_arc_set(W)
        bf_order, bf_removed = brute_force_fas(W)
        assert order == bf_order, (W, order, bf_order)
        assert removed == pytest.approx(bf_removed, abs=1e-12)
        assert removed == pytest.approx(order_cost(W - np.diag(np.diag(W)), order), abs=1e-12)


@pytest.mark.parametrize("weighting", ["binary", "margin"])
def test_dgr_matches_brute_force_on_random_tournaments(weighting):
    rng = np.random.default_rng(7 if weighting == "binary" else 8)
    for _ in range(150):
        n = int(rng.integers(2, 8))
        P = random_tournament(rng, n)
        W = dgr_graph(P, weighting=weighting)
        bf_order, bf_removed = brute_force_fas(W)
        order, removed = minimum_feedback_arc_set(W)
        assert (order, removed) == (bf_order, pytest.approx(bf_removed, abs=1e-12))
        expected = net_wins_from(W, bf_order)
        expected[np.isnan(P).sum(axis=1) == n] = np.nan  # no known comparison at all
        np.testing.assert_allclose(dgr(P, weighting=weighting), expected, atol=1e-12)


def test_lexicographically_smallest_optimum_is_returned():
    # cycle 0 -> 2 -> 1 -> 0: [0, 2, 1], [2, 1, 0] and [1, 0, 2] each remove one edge; [0, 2, 1] is smallest
    W = np.zeros((3, 3))
    W[0, 2] = W[2, 1] = W[1, 0] = 1.0
    assert minimum_feedback_arc_set(W) == ([0, 2, 1], 1.0)
    # no edges at all: every order is optimal, the identity is the smallest
    assert minimum_feedback_arc_set(np.zeros((5, 5))) == ([0, 1, 2, 3, 4], 0.0)


def test_brute_force_refuses_large_n():
    with pytest.raises(ValueError, match="at most 10"):
        brute_force_fas(np.zeros((11, 11)))


# ---------------------------------------------------------------- known DGR cases


def test_transitive_order_removes_nothing_and_scores_decrease_along_it():
    order = [3, 0, 5, 1, 4, 2]
    P = transitive(order, p=0.9)
    W = dgr_graph(P)
    fas_order, removed = minimum_feedback_arc_set(W)
    assert fas_order == order and removed == 0.0
    scores = dgr(P)
    along = scores[order]
    assert np.all(np.diff(along) < 0)
    np.testing.assert_allclose(along, [(5 - 2 * r) / 5 for r in range(6)])  # 1, 0.6, ..., -1


def test_three_cycle_removes_one_edge():
    P = matrix(np.array([[0, 1.0, 0.0], [0, 0, 1.0], [0, 0, 0]]))  # 0 beats 1, 1 beats 2, 2 beats 0
    order, removed = minimum_feedback_arc_set(dgr_graph(P))
    assert (order, removed) == ([0, 1, 2], 1.0)
    # kept: 0 -> 1 and 1 -> 2 (2 -> 0 removed); net wins 1, 0, -1 over n - 1 = 2
    np.testing.assert_allclose(dgr(P), [0.5, 0.0, -0.5])


def test_ties_are_half_weight_both_ways():
    P = matrix(np.array([[0, 0.5, 1.0], [0, 0, 0.9], [0, 0, 0]]))  # 0 ~ 1, both beat 2
    W = dgr_graph(P)
    assert W[0, 1] == W[1, 0] == 0.5
    assert W[0, 2] == W[1, 2] == 1.0 and W[2, 0] == W[2, 1] == 0.0
    order, removed = minimum_feedback_arc_set(W)
    assert (order, removed) == ([0, 1, 2], 0.5)  # one half of the tie's 2-cycle must go
    # the removed half never decides the score: the tie is half a win each way, net 0 for both
    np.testing.assert_allclose(dgr(P), [0.5, 0.5, -1.0])
    # tie_tol decides what counts as a tie; margin weighting weighs a tie (margin ~0) at ~0
    near = matrix(np.array([[0, 0.5 + 1e-7, 1.0], [0, 0, 0.9], [0, 0, 0]]))
    assert dgr_graph(near)[1, 0] == 0.5
    assert dgr_graph(near, tie_tol=1e-8)[1, 0] == 0.0 and dgr_graph(near, tie_tol=1e-8)[0, 1] == 1.0
    Wm = dgr_graph(P, weighting="margin")
    assert Wm[0, 1] == Wm[1, 0] == 0.0
    assert Wm[0, 2] == 1.0 and Wm[1, 2] == pytest.approx(0.8)


def test_missing_pairs_give_no_edge():
    P = matrix(np.array([[0, np.nan, 1.0], [0, 0, 1.0], [0, 0, 0]]))
    W = dgr_graph(P)
    assert W[0, 1] == W[1, 0] == 0.0
    np.testing.assert_allclose(dgr(P), [0.5, 0.5, -1.0])  # 0 and 1 both beat 2; their pair is unknown


def test_greedy_is_used_beyond_exact_max_n(monkeypatch):
    rng = np.random.default_rng(5)
    cases = [dgr_graph(random_tournament(rng, 6)) for _ in range(30)]
    exact = [minimum_feedback_arc_set(W) for W in cases]

    def no_dp(W):
        raise AssertionError("the exact DP must not run above exact_max_n")

    monkeypatch.setattr(agg, "_exact_fas", no_dp)
    for W, (_, best) in zip(cases, exact):
        order, removed = minimum_feedback_arc_set(W, exact_max_n=4)
        assert sorted(order) == list(range(6))
        assert removed == pytest.approx(order_cost(W, order))
        assert removed >= best - 1e-12
        for v in range(6):  # a local optimum: no single item can be moved somewhere better
            rest = [u for u in order if u != v]
            for q in range(6):
                assert order_cost(W, rest[:q] + [v] + rest[q:]) >= removed - 1e-12
    # the greedy order still finds a hidden transitive order exactly
    hidden = [4, 1, 5, 0, 3, 2]
    assert minimum_feedback_arc_set(dgr_graph(transitive(hidden, 0.8)), exact_max_n=4) == (hidden, 0.0)
    assert list(np.argsort(-dgr(transitive(hidden, 0.8), exact_max_n=4))) == hidden


# ---------------------------------------------------------------- every method


@pytest.mark.parametrize("method", METHODS)
def test_each_method_ranks_a_clear_preference_correctly(method):
    hidden = [2, 5, 0, 4, 1, 3]
    for P in (transitive(hidden, 0.9), transitive(hidden, 1.0)):
        scores = aggregate(P, method)
        assert scores.shape == (6,) and np.isfinite(scores).all()
        assert rank_order(scores) == hidden
        assert np.all(np.diff(scores[hidden]) < 0)


def test_win_rate_and_copeland_values():
    P = matrix(np.array([[0, 0.8, np.nan, 0.5], [0, 0, 0.3, 0.6], [0, 0, 0, 0.1], [0, 0, 0, 0]]))
    # item 0: known vs 1 (0.8) and 3 (0.5) only
    np.testing.assert_allclose(win_rate(P), [(0.8 + 0.5) / 2, (0.2 + 0.3 + 0.6) / 3, (0.7 + 0.1) / 2,
                                             (0.5 + 0.4 + 0.9) / 3])
    # copeland: (wins - losses) / known comparisons; 0.5 is a tie
    np.testing.assert_allclose(copeland(P), [(1 - 0) / 2, (1 - 2) / 3, (1 - 1) / 2, (1 - 1) / 3])


def test_bradley_terry_recovers_known_strengths():
    s = np.array([0.3, -1.2, 2.0, 0.0, 1.1, -0.7])
    P = from_strengths(s)
    theta = bradley_terry(P, prior=1e-9)
    np.testing.assert_allclose(theta, s - s.mean(), atol=1e-5)
    assert rank_order(bradley_terry(P)) == rank_order(s)  # with the default prior too
    assert abs(bradley_terry(P).sum()) < 1e-9
    # the prior only shrinks: smaller spread than the truth, same order
    assert np.ptp(bradley_terry(P, prior=1.0)) < np.ptp(s)


def test_bradley_terry_perfect_separation_stays_finite():
    theta = bradley_terry(transitive([0, 1, 2, 3], 1.0))
    assert np.isfinite(theta).all() and np.all(np.diff(theta) < 0) and theta[0] < 20
    assert abs(theta.sum()) < 1e-9


def test_bradley_terry_disconnected_components_are_centred_separately():
    P = np.full((5, 5), np.nan)
    P[0, 1], P[1, 0] = 0.9, 0.1  # component {0, 1}
    P[2, 3], P[3, 2] = 0.2, 0.8  # component {2, 3, 4}
    P[3, 4], P[4, 3] = 0.7, 0.3
    theta = bradley_terry(P)
    assert theta[0] > theta[1] and theta[3] > theta[4] and theta[3] > theta[2]
    assert theta[0] + theta[1] == pytest.approx(0.0, abs=1e-9)
    assert theta[2] + theta[3] + theta[4] == pytest.approx(0.0, abs=1e-9)


def test_elo_single_game_value():
    P = matrix(np.array([[0, 1.0], [0, 0]]))
    # one game from 1000 each: expected 0.5, so the winner gains k * 0.5
    np.testing.assert_allclose(elo(P, k=16.0, seeds=3), [1008.0, 992.0])
    np.testing.assert_allclose(elo(matrix(np.array([[0, 0.5], [0, 0]]))), [1000.0, 1000.0])


def test_elo_is_deterministic_and_order_independent():
    rng = np.random.default_rng(3)
    n = 7
    P = matrix(rng.choice([0.0, 1.0, 0.9, 0.2], size=(n, n)))
    perm = rng.permutation(n)
    Pp = P[np.ix_(perm, perm)]  # item a of Pp is item perm[a] of P
    a = elo(P, k=32.0, seeds=1024)
    np.testing.assert_array_equal(a, elo(P, k=32.0, seeds=1024))
    # permuting the items permutes the ratings, up to Monte-Carlo noise far below the rating spread
    assert np.abs(a[perm] - elo(Pp, k=32.0, seeds=1024)).max() < 0.5
    assert np.ptp(a) > 100
    # ...which a single match order does not achieve: the averaging is what makes the test pass
    assert np.abs(elo(P, k=32.0, seeds=1)[perm] - elo(Pp, k=32.0, seeds=1)).max() > 2.0
    assert abs(a.mean() - 1000.0) < 1e-9  # Elo is zero-sum


def test_elo_keeps_an_exact_tie_a_tie_whatever_the_positions():
    """Items P cannot tell apart (the same outcome against every other item, a draw between them) get equal
    ratings, not ratings that Monte-Carlo noise orders by position; a near tie is not forced equal."""
    P = matrix(np.array([[0, 0.0, 0.0, 0.0, 0.3],
                         [0, 0, 1.0, 0.5, 0.8],
                         [0, 0, 0, 0.0, 0.1],
                         [0, 0, 0, 0, 0.8],
                         [0, 0, 0, 0, 0]]))
    # items 1 and 3: both beat 0 and 2, both 0.8 against 4, a draw between them
    for seeds in (1, 3, 256):
        r = elo(P, k=32.0, seeds=seeds)
        assert r[1] == r[3] and np.argsort(-r)[:2].tolist() in ([1, 3], [3, 1]), seeds
        assert abs(r.mean() - 1000.0) < 1e-9  # still zero-sum
    near = P.copy()
    near[3, 4], near[4, 3] = 0.79, 0.21
    assert elo(near, k=32.0, seeds=3)[1] != elo(near, k=32.0, seeds=3)[3]


# ---------------------------------------------------------------- NaN, diagonal, consistency


@pytest.mark.parametrize("method", METHODS)
def test_item_without_any_comparison_is_nan(method):
    P = transitive([0, 1, 2, 3], 0.9)
    P[2, :] = P[:, 2] = np.nan
    scores = aggregate(P, method)
    assert np.isnan(scores[2])
    others = scores[[0, 1, 3]]
    assert np.isfinite(others).all() and np.all(np.diff(others) < 0)


@pytest.mark.parametrize("method", METHODS)
def test_diagonal_ignored_and_one_sided_matrix_completed(method):
    rng = np.random.default_rng(11)
    P = random_tournament(rng, 6)
    P[np.isnan(P)] = 0.6  # fully known, so every variant below holds the same information
    np.fill_diagonal(P, np.nan)
    P = matrix(np.where(np.isnan(P), 0, P))
    ref = aggregate(P, method)
    garbage_diag = P.copy()
    np.fill_diagonal(garbage_diag, 0.37)
    np.testing.assert_allclose(aggregate(garbage_diag, method), ref, atol=1e-12)
    upper_only = np.where(np.triu(np.ones((6, 6), dtype=bool), 1), P, np.nan)
    np.testing.assert_allclose(aggregate(upper_only, method), ref, atol=1e-12)


def test_both_orders_known_are_averaged():
    # a judge asked both ways: P(0 > 1) = 0.9 one way, P(1 > 0) = 0.3 the other -> 0.8
    P = np.array([[np.nan, 0.9], [0.3, np.nan]])
    np.testing.assert_allclose(win_rate(P), [0.8, 0.2])


def test_sizes_zero_and_one():
    for method in METHODS:
        assert aggregate(np.zeros((0, 0)), method).shape == (0,)
    assert win_rate([[np.nan]]).tolist() == [0.5]
    assert elo([[0.5]]).tolist() == [1000.0]
    for method in ("copeland", "bt", "dgr"):
        assert aggregate([[0.5]], method).tolist() == [0.0]


# ---------------------------------------------------------------- validation and helpers


def test_input_validation_messages():
    with pytest.raises(ValueError, match=r"unknown aggregation method 'borda'; valid: win_rate, copeland, "
                                         r"elo, bt, dgr"):
        aggregate(np.full((2, 2), 0.5), "borda")
    with pytest.raises(ValueError, match=r"square \(n x n\) matrix, got shape \(2, 3\)"):
        aggregate(np.full((2, 3), 0.5), "bt")
    with pytest.raises(ValueError, match="square"):
        win_rate(np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"in \[0, 1\].*P\[0, 1\] = 1.5"):
        aggregate(np.array([[np.nan, 1.5], [-0.5, np.nan]]), "copeland")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        dgr(np.array([[np.nan, np.inf], [0.0, np.nan]]))
    with pytest.raises(ValueError, match="weighting"):
        dgr(np.full((2, 2), 0.5), weighting="log")
    with pytest.raises(ValueError, match="non-negative"):
        minimum_feedback_arc_set(np.array([[0.0, -1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="seeds"):
        elo(np.full((2, 2), 0.5), seeds=0)


def test_rank_order_breaks_ties_to_lower_index_and_puts_nan_last():
    assert rank_order([0.1, 0.5, np.nan, 0.5, -1.0]) == [1, 3, 0, 4, 2]
    assert rank_order([]) == []


def test_brute_force_is_exhaustive_on_a_small_case():
    # sanity of the test oracle itself: its cost equals the minimum over all orders, computed here
    W = np.array([[0, 2, 0, 1], [0, 0, 3, 0], [1, 0, 0, 2], [0, 1, 0, 0]], dtype=float)
    costs = {p: order_cost(W, p) for p in itertools.permutations(range(4))}
    best = min(costs.values())
    assert brute_force_fas(W) == (list(min(p for p, c in costs.items() if c == best)), best)


class _LengthJudge(Judge):
    """Pairwise judge for the test: the longer response wins; one pair always fails."""

    pointwise = False

    def _compare(self, items):
        out = []
        for _, a, b in items:
            if {a, b} == {"bb", "dddd"}:
                self.failures.add("unparsable verdict")
                out.append(None)
            else:
                out.append(1.0 if len(a) > len(b) else 0.0 if len(a) < len(b) else 0.5)
        return out


@pytest.mark.parametrize("method", METHODS)
def test_judge_rank_goes_through_aggregate(method):
    judge = _LengthJudge()
    responses = ["bb", "a", "dddd", "ccc"]
    scores = judge.rank("q", responses, method)
    assert all(s is not None for s in scores)
    assert rank_order(scores) == [2, 3, 0, 1]
    assert judge.failures.total == 1


def test_settings_that_would_reverse_or_break_a_ranking_are_refused():
    P = np.array([[np.nan, 0.9], [0.1, np.nan]])
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="prior must be > 0"):
            agg.bradley_terry(P, prior=bad)
    for kwargs in ({"k": -16.0}, {"scale": 0.0}, {"k": float("inf")}, {"scale": float("nan")}):
        with pytest.raises(ValueError, match="k and scale must be finite and > 0"):
            agg.elo(P, **kwargs)
    with pytest.raises(ValueError, match="initial must be a finite rating"):  # NaN for every item
        agg.elo(P, initial=float("nan"))
