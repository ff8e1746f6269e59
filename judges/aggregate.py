"""Turn a matrix of pairwise probabilities into one score per item (higher is better).

    P[i, j] = P(item i beats item j), P[j, i] = 1 - P[i, j], NaN = the comparison is missing (failed).
    aggregate(P, method) -> np.ndarray of n scores, method in METHODS.

Conventions shared by every method:
- The diagonal is ignored, whatever it holds.
- The matrix is first made consistent: where both P[i, j] and P[j, i] are known, the pair's probability
  is their average (P[i, j] + 1 - P[j, i]) / 2 (a judge that asked in both orders gets its position bias
  averaged out); where only one is known, the other is filled in as its complement.
- An item whose comparisons are ALL missing (n > 1) gets NaN: `Judge.rank` turns that into None, a
  reported failure, instead of an invented score. With n == 1 there is nothing to compare and the item
  gets the method's neutral value (0.5 for win_rate, the initial rating for elo, 0.0 otherwise).

Methods: win_rate, copeland, elo, bt (Bradley-Terry), dgr (minimum feedback arc set, then net wins).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

METHODS = ("win_rate", "copeland", "elo", "bt", "dgr")

# Orders whose removed weights differ by less than this (relative to the graph's total weight) are
# treated as equally good, so float rounding cannot decide which optimal order wins the tie-break.
_REL_EPS = 1e-9


# ----------------------------------------------------------------------------------------- input checks


def _as_square(M, name: str) -> np.ndarray:
    M = np.array(M, dtype=float)  # a copy: callers' arrays are never modified
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be a square (n x n) matrix, got shape {M.shape}")
    return M


def _consistent(P) -> np.ndarray:
    """Validated copy of P with NaN diagonal and Q[j, i] == 1 - Q[i, j] wherever the pair is known."""
    P = _as_square(P, "P")
    np.fill_diagonal(P, np.nan)
    bad = ~np.isnan(P) & ((P < 0.0) | (P > 1.0))  # inf counts as outside [0, 1]
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"P must hold probabilities in [0, 1] (NaN for a missing comparison); "
                         f"P[{i}, {j}] = {P[i, j]}")
    Pt = 1.0 - P.T
    return np.where(np.isnan(P), Pt, np.where(np.isnan(Pt), P, (P + Pt) / 2))


def _no_comparison(Q: np.ndarray) -> np.ndarray:
    """Items with no known comparison (never true for n == 1, which has none to make)."""
    return np.isnan(Q).all(axis=1) & (len(Q) > 1)


# ----------------------------------------------------------------------------------------- simple methods


def win_rate(P) -> np.ndarray:
    """Mean of P[i, j] over the j with a known comparison, in [0, 1]; NaN for an item with none."""
    Q = _consistent(P)
    if len(Q) == 1:
        return np.array([0.5])
    known = ~np.isnan(Q)
    count = known.sum(axis=1)
    total = np.where(known, Q, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def copeland(P, tie_tol: float = 1e-6) -> np.ndarray:
    """(wins - losses) / (number of known comparisons), in [-1, 1].

    A win is P[i, j] > 0.5 + tie_tol, a loss P[i, j] < 0.5 - tie_tol, anything between is a tie (0).
    Dividing by the item's own number of known comparisons (not n - 1) keeps an item whose comparisons
    partly failed on the same scale as the others. NaN for an item with no known comparison.
    """
    Q = _consistent(P)
    known = ~np.isnan(Q)
    Qz = np.where(known, Q, 0.5)
    net = (Qz > 0.5 + tie_tol).sum(axis=1) - (Qz < 0.5 - tie_tol).sum(axis=1)
    count = known.sum(axis=1)
    out = np.where(count > 0, net / np.maximum(count, 1), np.nan)
    return np.zeros(1) if len(Q) == 1 else out


def elo(P, k: float = 16.0, seeds: int = 256, seed: int = 0, initial: float = 1000.0,
        scale: float = 400.0) -> np.ndarray:
    """Elo ratings, averaged over `seeds` random match orders so that the result does not depend on the
    order in which the items were listed.

    Every known pair i < j is one game with the fractional outcome P[i, j] (1 = i won, 0.5 = draw). Plain
    Elo depends on the order the games are played in, and any fixed order (say by index) would favour or
    penalise items for where they sit in the list. So the games are played in `seeds` independent random
    orders (all drawn from np.random.default_rng(seed): the same seed gives the same ratings), each from
    `initial`, with update k * (outcome - expected), expected = 1 / (1 + 10 ** ((R_j - R_i) / scale)), and
    the final ratings are averaged. What is left of the order dependence is Monte-Carlo noise that
    shrinks like 1 / sqrt(seeds), except between items that P cannot tell apart (the same outcome against
    every other item, and a draw or no game between them: their expected ratings are equal), which get the mean
    of their ratings, so an exact tie stays a tie whatever their positions. Items with no known comparison get NaN.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if not (0 < k < math.inf and 0 < scale < math.inf):  # a negative k or scale reverses the ranking silently
        raise ValueError(f"k and scale must be finite and > 0, got {k} and {scale}")
    if not math.isfinite(initial):  # NaN ratings for every item, each then a failure
        raise ValueError(f"initial must be a finite rating, got {initial}")
    Q = _consistent(P)
    n = len(Q)
    I, J = np.triu_indices(n, 1)
    played = ~np.isnan(Q[I, J])
    I, J, outcome = I[played], J[played], Q[I, J][played]
    rng = np.random.default_rng(seed)
    orders = rng.permuted(np.tile(np.arange(len(I)), (seeds, 1)), axis=1)
    R = np.full((seeds, n), float(initial))
    rows = np.arange(seeds)
    for t in range(len(I)):  # all orders advance together, one game each: no two updates touch a row twice
        g = orders[:, t]
        i, j = I[g], J[g]
        expected = 1.0 / (1.0 + 10.0 ** ((R[rows, j] - R[rows, i]) / scale))
        delta = k * (outcome[g] - expected)
        R[rows, i] += delta
        R[rows, j] -= delta
    out = R.mean(axis=0)
    for members in _interchangeable(Q):
        out[members] = out[members].mean()
    out[_no_comparison(Q)] = np.nan
    return out


def _interchangeable(Q: np.ndarray) -> list[list[int]]:
    """Classes (of two or more) of items that swapping leaves Q unchanged: the same outcome (or none) against
    every other item, and a draw or no game between them."""
    n, classes, placed = len(Q), [], set()
    for i in range(n):
        if i in placed:
            continue
        members = [i]
        for j in range(i + 1, n):
            others = np.ones(n, dtype=bool)
            others[[i, j]] = False
            if j not in placed and (np.isnan(Q[i, j]) or Q[i, j] == 0.5) and np.array_equal(
                    Q[i, others], Q[j, others], equal_nan=True):
                members.append(j)
        if len(members) > 1:
            placed.update(members)
            classes.append(members)
    return classes


def bradley_terry(P, prior: float = 0.01, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Bradley-Terry log-strengths theta (P(i beats j) = sigmoid(theta_i - theta_j)), centred at 0.

    Maximum a posteriori fit of the fractional outcomes: maximise
        sum over known ordered pairs (i, j) of P[i, j] * log sigmoid(theta_i - theta_j) - prior/2 * |theta|^2
    by Newton's method with a backtracking line search (the objective is strictly concave, so the optimum
    is unique and the fit deterministic). The small Gaussian prior keeps perfect separation (an item that
    wins every comparison with probability 1) finite instead of running off to infinity.

    Missing pairs simply contribute nothing. Disconnected components (groups never compared with one
    another) cannot be placed on a common scale by the data; the prior centres each component at 0 on
    its own, so scores order items within a component, and across components only say "both groups are
    centred". Items with no known comparison get NaN.
    """
    if not prior > 0:  # 0: a singular Newton step; below 0 the fit can put the loser ahead
        raise ValueError(f"prior must be > 0, got {prior}")
    Q = _consistent(P)
    n = len(Q)
    out = np.full(n, np.nan)
    active = ~_no_comparison(Q)
    Q = Q[np.ix_(active, active)]
    known = ~np.isnan(Q)
    Qz = np.where(known, Q, 0.0)
    m = len(Q)

    def objective(theta: np.ndarray) -> float:
        D = theta[:, None] - theta[None, :]
        return float(-(Qz * np.logaddexp(0.0, -D))[known].sum() - prior / 2 * theta @ theta)

    theta = np.zeros(m)
    f = objective(theta)
    for _ in range(max_iter):
        S = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        grad = np.where(known, Qz - S, 0.0).sum(axis=1) - prior * theta
        C = np.where(known, S * (1.0 - S), 0.0)
        H = np.diag(C.sum(axis=1) + prior) - C  # minus the Hessian: a Laplacian plus prior * I, so PD
        step = np.linalg.solve(H, grad)
        t = 1.0
        while t > 1e-12:
            f_new = objective(theta + t * step)
            if f_new >= f - 1e-14 * abs(f):
                break
            t /= 2
        theta, f = theta + t * step, f_new
        if np.max(np.abs(t * step), initial=0.0) < tol:
            break
    out[active] = theta - (theta.mean() if m else 0.0)
    return out


# ----------------------------------------------------------------------------------------- feedback arc set


def _weights(W) -> np.ndarray:
    W = _as_square(W, "W")
    np.fill_diagonal(W, 0.0)
    if not np.isfinite(W).all() or (W < 0).any():
        raise ValueError("W must hold finite, non-negative edge weights (0 = no edge)")
    return W


def order_cost(W, order: Sequence[int]) -> float:
    """Total weight of the edges that point backwards in `order` (from a later item to an earlier one)."""
    o = np.asarray(order, dtype=np.intp)
    return float(np.tril(np.asarray(W, dtype=float)[np.ix_(o, o)], -1).sum())


def _eps(W: np.ndarray) -> float:
    return _REL_EPS * max(1.0, float(W.sum()))


def _exact_fas(W: np.ndarray) -> list[int]:
    """Lexicographically smallest optimal order, by a dynamic programme over subsets.

    g[S] = least backward weight inside the set S when S is ordered on its own. Putting v first costs the
    edges u -> v from the rest of S, into[S, v] = sum over u in S of W[u, v], so
        g[S] = min over v in S of into[S, v] + g[S - {v}].
    Sets with k members only need sets with k - 1, so each popcount layer is one vectorised step per v:
    O(2^n * n) numpy work in O(n^2) Python iterations. Rebuilding the order front to back, always taking
    the smallest v that is still optimal, gives the lexicographically smallest optimal permutation.
    """
    n = len(W)
    full = (1 << n) - 1
    into = np.zeros((1 << n, n))
    for b in range(n):  # sets whose highest member is b = the sets below 2^b, plus b
        into[1 << b: 1 << (b + 1)] = into[: 1 << b] + W[b]
    subsets = np.arange(1 << n)
    popcount = np.zeros(1 << n, dtype=np.intp)
    for b in range(n):
        popcount += (subsets >> b) & 1
    by_layer = np.argsort(popcount, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(popcount, minlength=n + 1))))
    g = np.full(1 << n, np.inf)
    g[0] = 0.0
    for size in range(1, n + 1):
        S = by_layer[starts[size]: starts[size + 1]]
        best = np.full(len(S), np.inf)
        for v in range(n):
            has_v = ((S >> v) & 1).astype(bool)
            rest = S[has_v] & ~(1 << v)
            best[has_v] = np.minimum(best[has_v], into[S[has_v], v] + g[rest])
        g[S] = best
    eps = _eps(W)
    order, S = [], full
    for _ in range(n):
        for v in range(n):
            if S >> v & 1 and into[S, v] + g[S & ~(1 << v)] <= g[S] + eps:
                order.append(v)
                S &= ~(1 << v)
                break
    return order


def _greedy_fas(W: np.ndarray) -> list[int]:
    """Heuristic order: by weighted net wins (ties to the lower index), then insertion moves (take one
    item out, put it back where it removes the least weight; adjacent swaps are a special case) until no
    move gains more than the float tolerance. A local optimum, not necessarily the global one."""
    n = len(W)
    net = W.sum(axis=1) - W.sum(axis=0)
    order = sorted(range(n), key=lambda i: (-net[i], i))
    eps = _eps(W)
    improved = True
    while improved:
        improved = False
        for v in list(order):
            rest = [u for u in order if u != v]
            a, b = W[v, rest], W[rest, v]  # a: v -> u, backward if v ends up after u; b: u -> v, if before
            # cost of inserting v at position q of `rest`: sum(a[:q]) + sum(b[q:])
            cost = np.concatenate(([0.0], np.cumsum(a))) + np.concatenate((np.cumsum(b[::-1])[::-1], [0.0]))
            here = order.index(v)
            q = int(np.argmin(cost))
            if cost[q] < cost[here] - eps:
                order = rest[:q] + [v] + rest[q:]
                improved = True
    return order


def minimum_feedback_arc_set(W, exact_max_n: int = 16) -> tuple[list[int], float]:
    """(order, removed_weight) for the weighted directed graph W (W[i, j] = weight of edge i -> j, 0 = no
    edge, diagonal ignored): a linear order of the nodes minimising the total weight of edges pointing
    backwards (from a later node to an earlier one); those edges are a minimum-weight feedback arc set.

    n <= exact_max_n: exact (dynamic programme over subsets, O(2^n n) numpy work and 2^n * n floats of
    memory: 8 MB at n = 16), and among all optimal orders the lexicographically smallest permutation is
    returned (orders whose removed weight differs by less than 1e-9 * total weight count as equal).
    n > exact_max_n: a greedy heuristic (net-wins order improved by insertion moves), not guaranteed
    optimal and without the tie-break guarantee.
    """
    W = _weights(W)
    n = len(W)
    if n == 0:
        return [], 0.0
    order = _exact_fas(W) if n <= exact_max_n else _greedy_fas(W)
    return order, order_cost(W, order)


def brute_force_fas(W) -> tuple[list[int], float]:
    """Reference for tests and the bench: tries all n! orders (n <= 10) and returns the lexicographically
    smallest one with the least removed weight (same float tolerance as minimum_feedback_arc_set)."""
    W = _weights(W)
    n = len(W)
    if n > 10:
        raise ValueError(f"brute_force_fas tries all n! orders; n = {n} is too many (at most 10)")
    if n == 0:
        return [], 0.0
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.intp)  # in lexicographic order
    cost = np.zeros(len(perms))
    for a in range(n):
        for b in range(a + 1, n):
            cost += W[perms[:, b], perms[:, a]]  # the item at position b points back to position a
    first = int(np.argmax(cost <= cost.min() + _eps(W)))
    return perms[first].tolist(), float(cost[first])


# ----------------------------------------------------------------------------------------- DGR


def dgr_graph(P, tie_tol: float = 1e-6, weighting: str = "binary") -> np.ndarray:
    """The DGR preference graph as a weight matrix W (W[i, j] = weight of edge i -> j).

    i -> j when P[i, j] > 0.5 + tie_tol, with weight 1 ("binary") or 2 * |P[i, j] - 0.5| ("margin").
    A tie (|P[i, j] - 0.5| <= tie_tol) gives edges both ways with half that weight (never a random
    direction); a missing pair gives no edge.
    """
    return _graph(_consistent(P), tie_tol, weighting)


def _graph(Q: np.ndarray, tie_tol: float, weighting: str) -> np.ndarray:
    if weighting not in ("binary", "margin"):
        raise ValueError(f"weighting must be 'binary' or 'margin', got {weighting!r}")
    known = ~np.isnan(Q)
    Qz = np.where(known, Q, 0.5)
    weight = np.ones_like(Qz) if weighting == "binary" else 2 * np.abs(Qz - 0.5)
    tie = known & (np.abs(Qz - 0.5) <= tie_tol)
    return np.where(known & (Qz > 0.5 + tie_tol), weight, 0.0) + np.where(tie, weight / 2, 0.0)


def dgr(P, exact_max_n: int = 16, tie_tol: float = 1e-6, weighting: str = "binary") -> np.ndarray:
    """DGR: build the preference graph (see dgr_graph), remove a minimum-weight feedback arc set, and
    score each item by its net wins among the edges that are kept.

    The arc set is the set of backward edges of the order from minimum_feedback_arc_set: exact for
    n <= exact_max_n (and then the lexicographically smallest optimal order, so equally good orders are
    broken toward the lower index), a greedy heuristic beyond. The kept edges form a DAG consistent
    with that order, and
        score_i = (kept out-weight of i - kept in-weight of i) / ((n - 1) * w_max),   w_max = 1,
    w_max being the largest weight either weighting gives an edge, so scores lie in [-1, 1]: 1 = beat
    every other item, -1 = lost to all. A missing pair counts as neither win nor loss (it still counts
    in n - 1). A tie's two half-weight edges form a 2-cycle that costs the same in every order, so it
    never steers the order; both halves are kept, so a tie adds half a win and half a loss to each side
    (net 0) instead of a direction picked by the tie-break. Items with no known comparison get NaN.
    """
    Q = _consistent(P)
    W = _graph(Q, tie_tol, weighting)
    n = len(W)
    if n <= 1:
        return np.zeros(n)
    order, _ = minimum_feedback_arc_set(W, exact_max_n=exact_max_n)
    position = np.empty(n, dtype=np.intp)
    position[order] = np.arange(n)
    known = ~np.isnan(Q)
    tie = known & (np.abs(np.where(known, Q, 0.5) - 0.5) <= tie_tol)
    kept = np.where(tie | (position[:, None] < position[None, :]), W, 0.0)
    out = (kept.sum(axis=1) - kept.sum(axis=0)) / (n - 1)
    out[_no_comparison(Q)] = np.nan
    return out


# ----------------------------------------------------------------------------------------- dispatch

_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "win_rate": win_rate,
    "copeland": copeland,
    "elo": elo,
    "bt": bradley_terry,
    "dgr": dgr,
}


def aggregate(P, method: str, **kwargs) -> np.ndarray:
    """One score per item from the pairwise matrix P, by `method` (one of METHODS); kwargs go to it."""
    if method not in _FUNCTIONS:
        raise ValueError(f"unknown aggregation method {method!r}; valid: {', '.join(METHODS)}")
    return np.asarray(_FUNCTIONS[method](P, **kwargs), dtype=float)


def rank_order(scores) -> list[int]:
    """Item indices best first; equal scores go to the lower index, NaN scores last (by index)."""
    s = np.asarray(scores, dtype=float)
    missing = np.isnan(s)
    return sorted(range(len(s)), key=lambda i: (bool(missing[i]), 0.0 if missing[i] else -s[i], i))
