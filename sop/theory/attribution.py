"""Insertion / deletion error of an attribution, for per-feature and grouped attributions.

Setting (the paper's Section 2).  A model f maps d features to a number.  The input
being explained is x = 1 (every feature present); a feature is removed by setting it
to 0.  For a set T of features, 1_T is the input with exactly the features in T present.

A *grouped attribution* is a list of groups G_1..G_m (sets of features) with scores
c_1..c_m.  A group counts as present only when all of its features are present.  It
predicts the model's output on a perturbed input as follows:

    insertion of S (keep S, zero the rest):   pred_ins(S) = f(0) + sum_{j : G_j subset of S} c_j
    deletion of S  (zero S, keep the rest):   pred_del(S) = f(1) - sum_{j : G_j meets S} c_j

and its error on that subset is the gap to what the model really outputs:

    e_ins(S) = | f(1_S)        - pred_ins(S) |
    e_del(S) = | f(1_{[d]\\S}) - pred_del(S) |

A *per-feature attribution* alpha in R^d is the grouped attribution whose groups are
the singletons {i} with scores alpha_i, so the formulas become
pred_ins(S) = f(0) + sum_{i in S} alpha_i and pred_del(S) = f(1) - sum_{i in S} alpha_i.

The *total error* combines the errors of all 2^d subsets S of the chosen tests:

    norm "l1"   (default):  E = sum_{test} sum_{S subset [d]} e_test(S)
    norm "linf":            E = max_{test, S} e_test(S)

with tests "both" (default: insertion and deletion), "insertion" or "deletion".

Subsets are integer bitmasks (bit i <=> feature i), so all 2^d of them are
np.arange(2**d).  The model f is given either as a callable on inputs of shape
(N, d), or as its table: an array of length 2^d with table[T] = f(1_T).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from ..errors import InputError

TESTS = ("insertion", "deletion")
NORMS = ("l1", "linf")
#: Exhaustive evaluation enumerates 2^d subsets; beyond this d it is too slow/large.
MAX_EXHAUSTIVE_D = 22

Model = Union[Callable[[np.ndarray], np.ndarray], np.ndarray]


def test_names(tests: str) -> tuple[str, ...]:
    """'both' -> ('insertion', 'deletion'); a single test name -> itself."""
    if tests == "both":
        return TESTS
    if tests in TESTS:
        return (tests,)
    raise InputError(f"unknown tests {tests!r}; choose 'both', 'insertion' or 'deletion'")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise InputError(f"unknown norm {norm!r}; choose one of {NORMS}")
    return norm


def all_subsets(d: int) -> np.ndarray:
    """Every subset of d features as a bitmask, 0 .. 2^d - 1."""
    if d > MAX_EXHAUSTIVE_D:
        raise InputError(f"enumerating all 2^{d} subsets is too large (limit d = {MAX_EXHAUSTIVE_D})")
    return np.arange(1 << d, dtype=np.int64)


def subset_inputs(masks: np.ndarray, d: int) -> np.ndarray:
    """The binary inputs 1_T (shape (N, d), float) of the subsets T given as bitmasks."""
    masks = np.asarray(masks, dtype=np.int64)
    return ((masks[:, None] >> np.arange(d)) & 1).astype(float)


def model_values(f: Model, d: int, masks: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """f(1_T) for each bitmask T: a table lookup, or f run on the actual binary inputs."""
    masks = np.asarray(masks, dtype=np.int64)
    if isinstance(f, np.ndarray):
        if f.shape != (1 << d,):
            raise InputError(f"a model table for d={d} must have length 2^{d}, got shape {f.shape}")
        return f[masks].astype(float)
    out = np.empty(len(masks))
    for lo in range(0, len(masks), chunk):  # chunks keep the (N, d) inputs small at d = 20
        out[lo:lo + chunk] = np.asarray(f(subset_inputs(masks[lo:lo + chunk], d)), dtype=float).reshape(-1)
    return out


def model_table(f: Model, d: int) -> np.ndarray:
    """The full table f(1_T) for all 2^d subsets T."""
    return model_values(f, d, all_subsets(d))


@dataclass(frozen=True)
class Attribution:
    """Groups (bitmasks) with scores; per-feature attributions have singleton groups."""
    groups: tuple[int, ...]
    scores: tuple[float, ...]
    kind: str = "grouped"

    def __post_init__(self):
        if len(self.groups) != len(self.scores):
            raise InputError("an attribution needs one score per group")
        if any(g <= 0 for g in self.groups):
            raise InputError("groups must be non-empty feature sets")

    @classmethod
    def per_feature(cls, alpha) -> "Attribution":
        """alpha_i on feature i, i.e. groups {0}, {1}, ..., {d-1}."""
        alpha = np.asarray(alpha, dtype=float).reshape(-1)
        return cls(tuple(1 << i for i in range(len(alpha))), tuple(float(a) for a in alpha), "per-feature")

    def inserted(self, masks: np.ndarray) -> np.ndarray:
        """sum_{j : G_j subset of S} c_j for each subset S (groups fully kept)."""
        masks = np.asarray(masks, dtype=np.int64)
        total = np.zeros(len(masks))
        for g, c in zip(self.groups, self.scores):
            total += c * ((masks & g) == g)
        return total

    def removed(self, masks: np.ndarray) -> np.ndarray:
        """sum_{j : G_j meets S} c_j for each subset S (groups broken by removing S)."""
        masks = np.asarray(masks, dtype=np.int64)
        total = np.zeros(len(masks))
        for g, c in zip(self.groups, self.scores):
            total += c * ((masks & g) != 0)
        return total


def subset_errors(f: Model, attribution: Attribution, d: int, test: str,
                  masks: np.ndarray | None = None) -> np.ndarray:
    """e_test(S) for each subset S (bitmasks; all 2^d by default), as defined above."""
    masks = all_subsets(d) if masks is None else np.asarray(masks, dtype=np.int64)
    full = (1 << d) - 1
    f0, f1 = model_values(f, d, np.array([0, full]))
    if test == "insertion":
        true, pred = model_values(f, d, masks), f0 + attribution.inserted(masks)
    elif test == "deletion":
        true, pred = model_values(f, d, full ^ masks), f1 - attribution.removed(masks)
    else:
        raise InputError(f"unknown test {test!r}; choose 'insertion' or 'deletion'")
    return np.abs(true - pred)


def total_error(f: Model, attribution: Attribution, d: int, tests: str = "both", norm: str = "l1",
                classes: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Total error E (see module docstring) over all 2^d subsets of each test.

    `classes` = (representatives, multiplicities) evaluates one subset per symmetry
    class and weights it by the class size.  That is exact when f and the attribution
    are both invariant under the permutations that define the classes (the symmetry
    blocks of a polynomial, see `sop.theory.lp.symmetry_classes`); it is how the error
    is measured for d beyond exhaustive enumeration.
    """
    check_norm(norm)
    if classes is None:
        masks, weights = all_subsets(d), None
    else:
        masks, weights = classes
    parts = []
    for test in test_names(tests):
        e = subset_errors(f, attribution, d, test, masks)
        if norm == "l1":
            parts.append(float(np.sum(e)) if weights is None else float(np.dot(np.asarray(weights, float), e)))
        else:
            parts.append(float(np.max(e)))
    return sum(parts) if norm == "l1" else max(parts)


def mobius(table: np.ndarray) -> np.ndarray:
    """Mobius transform (Harsanyi dividends) of a set function given by its table.

    mu(U) = sum_{T subset U} (-1)^{|U|-|T|} f(1_T), so that f(1_T) = sum_{U subset T} mu(U).
    For a multilinear polynomial, mu(U) is the coefficient of prod_{i in U} x_i.
    Computed in O(d 2^d) by differencing along one feature at a time.
    """
    mu = np.array(table, dtype=float)
    n = len(mu)
    d = n.bit_length() - 1
    if n != 1 << d:
        raise InputError(f"a table must have length 2^d, got {n}")
    for i in range(d):
        view = mu.reshape(-1, 2, 1 << i)  # axis 1 = bit i of the subset
        view[:, 1, :] -= view[:, 0, :]
    return mu


def exact_grouped_attribution(table: np.ndarray, tol: float = 1e-9) -> Attribution:
    """The grouped attribution with zero insertion and deletion error, computed from f.

    Groups are the non-empty sets U with a non-zero dividend mu(U), scores c_U = mu(U).
    Why it is exact: pred_ins(S) = f(0) + sum_{U subset S, U != {}} mu(U) = f(1_S), and
    pred_del(S) = f(1) - sum_{U meets S} mu(U) = sum_{U subset [d]\\S} mu(U) = f(1_{[d]\\S}).
    Dividends with |mu| <= tol * max|f| are treated as zero (floating-point noise).
    """
    mu = mobius(table)
    scale = max(1.0, float(np.max(np.abs(table))))
    keep = [int(u) for u in np.nonzero(np.abs(mu) > tol * scale)[0] if u != 0]
    return Attribution(tuple(keep), tuple(float(mu[u]) for u in keep), "grouped")


def shapley_values(table: np.ndarray) -> np.ndarray:
    """Exact Shapley values at x = 1 with baseline 0: phi_i = sum_{U containing i} mu(U) / |U|."""
    mu = mobius(table)
    d = len(mu).bit_length() - 1
    masks = np.arange(len(mu))
    sizes = np.array([bin(int(m)).count("1") for m in masks])
    phi = np.zeros(d)
    for i in range(d):
        has = ((masks >> i) & 1).astype(bool) & (sizes > 0)
        phi[i] = float(np.sum(mu[has] / sizes[has]))
    return phi


def attribution_from_terms(terms, coefs) -> Attribution:
    """Grouped attribution read off a polynomial: one group per non-constant term.

    Groups are the terms' feature sets and scores their coefficients (equal sets are
    merged); the constant term is f(0), the starting point of every prediction.
    """
    merged: dict[int, float] = {}
    for t, c in zip(terms, coefs):
        m = sum(1 << int(i) for i in t)
        if m:
            merged[m] = merged.get(m, 0.0) + float(c)
    keep = [(m, c) for m, c in merged.items() if c != 0]
    return Attribution(tuple(m for m, _ in keep), tuple(c for _, c in keep), "grouped")
