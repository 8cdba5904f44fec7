"""The best per-feature attribution, by linear programming, with a certified lower bound.

Problem.  For a model f and the total error E(alpha) of `sop.theory.attribution`, find

    E* = min_{alpha in R^d} E(alpha).

Every test row r = (test, S) has the form e_r = | b_r - sum_{i in S} alpha_i | with

    insertion:  b_r = f(1_S) - f(0)          deletion:  b_r = f(1) - f(1_{[d]\\S})

so with A the 0/1 matrix of rows (A[r, i] = 1 iff i in S) and weights w_r (1 per subset):

    l1:    E(alpha) = sum_r w_r |b_r - A_r alpha|        linf:  E(alpha) = max_r |b_r - A_r alpha|

The LP and its dual (weak duality: for any y with A^T y = 0 in the dual norm ball,
sum_r y_r b_r = sum_r y_r (b_r - A_r alpha) <= E(alpha) for every alpha):

    primal:  min_{alpha, u, v >= 0}  sum_r w_r (u_r + v_r)   s.t.  A alpha + u - v = b      (l1)
    dual:    max_y  b . y   s.t.  A^T y = 0,  |y_r| <= w_r                              (l1)
                                              sum_r |y_r| <= 1                          (linf)

HiGHS (scipy.optimize.linprog) solves the dual: d equality rows, 2^(d+1) bounded
variables.  The optimal alpha comes back as the rows' marginals and is *measured*:
`LPResult.value` is E(alpha) recomputed from the rows.  `certify` turns the solver's
floating-point y into an exactly feasible dual point in rational arithmetic and returns
its exact objective, a certified lower bound.  So  bound <= E* <= value,  and the two
agree to ~1e-12 relative for every case we ran up to d = 20.

Brute force.  One row per (test, subset): 2^d rows per test, d variables; seconds up to
d = 14, about half a minute at d = 18.

Symmetry reduction.  If a permutation pi of the features leaves f unchanged, it maps
the rows of the problem onto each other, so E(pi alpha) = E(alpha).  E is convex, so
averaging an optimal alpha over the group of such permutations gives an optimal alpha
that is constant on each orbit.  For a polynomial the permutations inside each block
of `Polynomial.blocks()` qualify, hence alpha_i = a_b for i in block b without loss.
A subset S then matters only through its counts k_b = |S n block b|: the row is
| b_k - sum_b k_b a_b |, shared by prod_b C(n_b, k_b) subsets (its weight).  The LP has
one variable per block and prod_b (n_b + 1) rows per test: a few hundred at d = 20.
A dual point y of the reduced LP lifts to lambda_S = y_k / C_k for every S of class k
(C_k = class size), which satisfies the full dual constraints: so the reduced
certificate certifies the full problem (`lift_reduced_dual` checks this explicitly).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from ..errors import InputError, SOPError
from .attribution import (MAX_EXHAUSTIVE_D, Model, all_subsets, check_norm, model_values,
                          test_names)
from .polynomials import Polynomial

#: brute force builds 2^d rows per test; above this the dense row matrix gets large.
MAX_BRUTE_D = 18
#: subsets are int64 bitmasks, so the reduced LP (and everything else) stops at d = 62.
MAX_D = 62


@dataclass(frozen=True)
class Certificate:
    """A dual point y = scale * numerators / denominator, exactly feasible; bound = b . y."""
    bound: Fraction
    numerators: tuple[int, ...]
    denominator: int
    scale: Fraction  # <= 1: how much the projected dual had to shrink to fit the bounds

    @property
    def bound_float(self) -> float:
        """The bound rounded down to a float, so it stays a valid lower bound."""
        x = float(self.bound)
        return x if Fraction(x) <= self.bound else math.nextafter(x, -math.inf)

    def dual(self) -> list[Fraction]:
        return [self.scale * Fraction(n, self.denominator) for n in self.numerators]


@dataclass
class LPResult:
    value: float                 # E(alpha) of the returned alpha: >= E*, equal up to solver tolerance
    alpha: np.ndarray            # an optimal per-feature attribution (length d)
    certificate: Certificate | None
    seconds: float               # building the rows + HiGHS solve
    certify_seconds: float
    method: str                  # "brute" or "reduced"
    rows: int                    # test rows of the LP
    variables: int               # attribution variables (d, or the number of blocks)
    info: dict = field(default_factory=dict)

    @property
    def bound(self) -> float | None:
        return None if self.certificate is None else self.certificate.bound_float


@dataclass(frozen=True)
class _Problem:
    A: np.ndarray        # (R, n) integer rows
    b: np.ndarray        # (R,) targets
    w: tuple[int, ...]   # (R,) exact integer weights
    tests: tuple[str, ...]  # the test of each row
    masks: np.ndarray    # (R,) the subset (or class representative) of each row


def _targets(f: Model, d: int, test: str, masks: np.ndarray) -> np.ndarray:
    """b_r for the rows of one test (see module docstring)."""
    full = (1 << d) - 1
    f0, f1 = model_values(f, d, np.array([0, full]))
    if test == "insertion":
        return model_values(f, d, masks) - f0
    return f1 - model_values(f, d, full ^ masks)


def _assemble(f: Model, d: int, tests: str, masks: np.ndarray, counts: np.ndarray,
              weights: list[int]) -> _Problem:
    names = test_names(tests)
    A = np.vstack([counts] * len(names))
    b = np.concatenate([_targets(f, d, t, masks) for t in names])
    return _Problem(A=A, b=b, w=tuple(weights) * len(names),
                    tests=tuple(t for t in names for _ in masks), masks=np.concatenate([masks] * len(names)))


def _solve(p: _Problem, norm: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """HiGHS on the *dual* LP; returns (alpha, y).

    The dual has one equality row per attribution variable (A^T y = 0) and one bounded
    variable per test row, so simplex works on d rows instead of 2^(d+1): at d = 14 this
    is about 100 times faster than the primal.  An optimal alpha is read off the
    equality rows' marginals: with V(c) = max {b.y : A^T y = c, y in the norm ball}
    = min_alpha E(alpha) + c.alpha, the marginal dV/dc is alpha*, and HiGHS reports
    d(-V)/dc because it minimises -b.y.  Weights are divided by `scale` (2^d) so the
    numbers stay near 1.
    """
    R, n = p.A.shape
    At = sparse.csr_matrix(p.A.T.astype(float))
    if norm == "l1":
        w = np.array([float(x) for x in p.w]) / scale
        res = linprog(-p.b, A_eq=At, b_eq=np.zeros(n), bounds=np.stack([-w, w], axis=1), method="highs")
        y = res.x * scale if res.status == 0 else None
    else:  # y = y+ - y-, sum (y+ + y-) <= 1
        res = linprog(np.concatenate([-p.b, p.b]), A_eq=sparse.hstack([At, -At]).tocsr(), b_eq=np.zeros(n),
                      A_ub=np.ones((1, 2 * R)), b_ub=[1.0], bounds=(0, None), method="highs")
        y = res.x[:R] - res.x[R:] if res.status == 0 else None
    if res.status != 0:
        raise SOPError(f"HiGHS did not solve the LP: {res.message}")
    return -np.asarray(res.eqlin.marginals, dtype=float), y


def _row_error(p: _Problem, alpha: np.ndarray, norm: str) -> float:
    """E(alpha) summed (or maxed) over the LP's rows with their weights."""
    e = np.abs(p.b - p.A @ alpha)
    return float(np.dot([float(x) for x in p.w], e)) if norm == "l1" else float(np.max(e))


def _scaled_ints(values: np.ndarray) -> tuple[list[int], int]:
    """Exact integers N and a power of two D with values = N / D (floats are dyadic)."""
    ratios = [float(v).as_integer_ratio() for v in values]
    den = max((q for _, q in ratios), default=1)
    return [n * (den // q) for n, q in ratios], den


def _solve_exact(G: list[list[int]], r: list[int]) -> list[Fraction]:
    """Solve G z = r exactly (Gauss-Jordan in rationals); G is small and invertible."""
    n = len(G)
    M = [[Fraction(x) for x in row] + [Fraction(r[i])] for i, row in enumerate(G)]
    for col in range(n):
        piv = next((i for i in range(col, n) if M[i][col] != 0), None)
        if piv is None:
            raise SOPError("the LP's row matrix is rank deficient; cannot certify the dual")
        M[col], M[piv] = M[piv], M[col]
        inv = 1 / M[col][col]
        M[col] = [x * inv for x in M[col]]
        for i in range(n):
            if i != col and M[i][col] != 0:
                fac = M[i][col]
                M[i] = [a - fac * c for a, c in zip(M[i], M[col])]
    return [M[i][n] for i in range(n)]


def certify(A: np.ndarray, b: np.ndarray, w, y: np.ndarray, norm: str, margin: float = 1e-12) -> Certificate:
    """An exactly feasible dual point near y, and its exact objective b . y (a lower bound).

    1. clip y into the norm ball, a hair inside (|y_r| <= (1 - margin) w_r for l1; scaled to
       sum |y_r| <= 1 - margin for linf);
    2. project onto {A^T y = 0} exactly in rationals, moving row r in proportion to its
       weight (y1 = y0 - W A (A^T W A)^{-1} A^T y0, W = diag(w) for l1, identity for linf),
       so rows with tiny weights (the extreme subset sizes at large d) get tiny corrections;
    3. shrink y = theta * y1 with the largest theta <= 1 that meets the norm bound exactly.
       Scaling keeps A^T y = 0, so y is dual feasible and b . y <= E(alpha) for every alpha.
    """
    y = np.asarray(y, dtype=float)
    if norm == "l1":
        wf = np.array([float(x) for x in w])
        y = np.clip(y, -wf * (1 - margin), wf * (1 - margin))
        wint = [int(x) for x in w]
    else:
        total = float(np.sum(np.abs(y)))
        y = y * ((1 - margin) / total) if total > 1 - margin else y
        wint = [1] * len(y)
    A64 = np.asarray(A, dtype=np.int64)
    Aobj = A64.astype(object)
    Wobj = np.array(wint, dtype=object)
    Y, D = _scaled_ints(y)
    Bn, Db = _scaled_ints(b)
    r = [int(v) for v in Aobj.T.dot(np.array(Y, dtype=object))]
    G = [[int(v) for v in row] for row in Aobj.T.dot(Aobj * Wobj[:, None])]
    z = _solve_exact(G, r)
    q = math.lcm(*(zi.denominator for zi in z)) if z else 1
    Z = np.array([int(zi * q) for zi in z], dtype=object)
    corr = Aobj.dot(Z) * Wobj if len(Z) else np.zeros(len(Y), dtype=object)
    num = [yi * q - int(ci) for yi, ci in zip(Y, corr)]
    den = D * q
    if norm == "l1":
        theta = min([Fraction(wi * den, abs(ni)) for ni, wi in zip(num, wint) if ni], default=Fraction(1))
    else:
        total = sum(abs(ni) for ni in num)
        theta = Fraction(den, total) if total else Fraction(1)
    theta = min(theta, Fraction(1))
    obj = sum(ni * bi for ni, bi in zip(num, Bn))
    return Certificate(bound=theta * Fraction(obj, den * Db), numerators=tuple(num),
                       denominator=den, scale=theta)


def _finish(p: _Problem, norm: str, d: int, method: str, expand, certify_dual: bool,
            t0: float) -> LPResult:
    x, y = _solve(p, norm, float(1 << d))
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    cert = certify(p.A, p.b, p.w, y, norm) if certify_dual else None
    return LPResult(value=_row_error(p, x, norm), alpha=expand(x), certificate=cert, seconds=seconds,
                    certify_seconds=time.perf_counter() - t1, method=method, rows=len(p.b),
                    variables=p.A.shape[1], info={"problem": p})


def brute_force_lp(f: Model, d: int, tests: str = "both", norm: str = "l1",
                   certify_dual: bool = True) -> LPResult:
    """Exact minimum total error over all per-feature attributions: one row per subset.

    Works for any model f (callable or table), not only symmetric ones.
    """
    check_norm(norm)
    if d > MAX_BRUTE_D:
        raise InputError(f"brute-force LP needs 2^{d} rows per test; use the reduced LP above d = {MAX_BRUTE_D}")
    t0 = time.perf_counter()
    masks = all_subsets(d)
    counts = ((masks[:, None] >> np.arange(d)) & 1).astype(np.int8)
    p = _assemble(f, d, tests, masks, counts, [1] * len(masks))
    return _finish(p, norm, d, "brute", lambda x: np.asarray(x, float), certify_dual, t0)


def symmetry_classes(blocks: list[tuple[int, ...]]):
    """Classes of subsets under permutations inside blocks.

    Returns (counts (C, B) int, representatives (C,) bitmasks, sizes list[int]) where the
    representative of counts k takes the first k_b features of each block b and the
    class holds prod_b C(n_b, k_b) subsets.
    """
    counts, reps, sizes = [], [], []
    for k in itertools.product(*(range(len(bl) + 1) for bl in blocks)):
        counts.append(k)
        reps.append(sum(1 << i for bl, kb in zip(blocks, k) for i in bl[:kb]))
        sizes.append(math.prod(math.comb(len(bl), kb) for bl, kb in zip(blocks, k)))
    return np.array(counts, dtype=np.int64).reshape(-1, len(blocks)), np.array(reps, dtype=np.int64), sizes


def reduced_lp(poly: Polynomial, tests: str = "both", norm: str = "l1",
               certify_dual: bool = True) -> LPResult:
    """Minimum total error over all per-feature attributions, via the symmetry reduction.

    Same optimum as `brute_force_lp(poly, ...)` (see module docstring), with one
    variable per block of `poly.blocks()`; f is evaluated on one representative
    binary input per class.
    """
    check_norm(norm)
    if poly.d > MAX_D:
        raise InputError(f"d = {poly.d} is above the supported maximum of {MAX_D} features")
    t0 = time.perf_counter()
    blocks = poly.blocks()
    counts, reps, sizes = symmetry_classes(blocks)
    p = _assemble(poly, poly.d, tests, reps, counts, sizes)
    owner = np.empty(poly.d, dtype=np.int64)
    for j, bl in enumerate(blocks):
        owner[list(bl)] = j
    res = _finish(p, norm, poly.d, "reduced", lambda x: np.asarray(x, float)[owner], certify_dual, t0)
    res.info.update(blocks=blocks, class_sizes=sizes)
    return res


def lift_reduced_dual(result: LPResult, d: int) -> dict[tuple[str, int], Fraction]:
    """The reduced certificate as a dual point of the brute-force LP: lambda_(test, S) = y_(test, k(S)) / C_k.

    For small d only (it enumerates all subsets).  With it one can check the full dual
    constraints directly: sum_S lambda_S [i in S] = 0 for every i, and the norm bound.
    """
    if result.method != "reduced" or result.certificate is None:
        raise InputError("lift_reduced_dual needs a certified reduced_lp result")
    if d > MAX_EXHAUSTIVE_D:
        raise InputError(f"lifting enumerates 2^{d} subsets; too many")
    blocks = result.info["blocks"]
    sizes = result.info["class_sizes"]
    p: _Problem = result.info["problem"]
    ncls = len(sizes)
    index = {k: j for j, k in enumerate(itertools.product(*(range(len(bl) + 1) for bl in blocks)))}
    y = result.certificate.dual()
    lifted = {}
    for s in all_subsets(d):
        k = tuple(sum((int(s) >> i) & 1 for i in bl) for bl in blocks)
        j = index[k]
        for t_idx in range(len(p.b) // ncls):
            row = t_idx * ncls + j
            lifted[(p.tests[row], int(s))] = y[row] / sizes[j]
    return lifted


def pairing_bound(f: Model, d: int) -> float:
    """A lower bound on the l1 'both' error of *every* per-feature attribution, no LP needed.

    For each subset S the two tests ask for the same sum alpha(S) = sum_{i in S} alpha_i:
    insertion wants alpha(S) = f(1_S) - f(0), deletion wants alpha(S) = f(1) - f(1_{[d]\\S}).
    By the triangle inequality e_ins(S) + e_del(S) >= |f(1_S) + f(1_{[d]\\S}) - f(1) - f(0)|, so

        E(alpha) >= sum_S | f(1_S) + f(1_{[d]\\S}) - f(1) - f(0) |     for every alpha.

    The right side is zero for an additive (linear) f and measures how much f's features
    act together.  For p = prod_{i in S} x_i every S other than {} and [d] contributes 1.
    """
    masks = all_subsets(d)
    full = (1 << d) - 1
    vals = model_values(f, d, masks)
    return float(np.sum(np.abs(vals + vals[full ^ masks] - vals[full] - vals[0])))


def closed_form(poly: Polynomial, tests: str = "both", norm: str = "l1") -> float | None:
    """E* in closed form where one is proved; None otherwise (then only the LP knows).

    (a) tests 'both', l1, all coefficients c_m >= 0 (monomials, binomials, ...):

            E* = sum_m c_m (2^d - 2^(d - |M_m| + 1))        (constant terms excluded)

        Lower bound: `pairing_bound`; for this p, f(1_S) + f(1_{[d]\\S}) - f(1) - f(0) =
        -sum_m c_m [S splits M_m] (S meets M_m without containing it), all of one sign, and
        2^d - 2^(d-|M|+1) subsets split a non-empty M.  Attained by any alpha that spreads
        each c_m over its own features with non-negative shares (e.g. the Shapley value
        alpha_i = sum_{m : i in M_m} c_m / |M_m|): then for every S and every term
        c_m [S contains M_m] <= (share of M_m inside S) <= c_m (1 - [S misses M_m]), so
        alpha(S) lies between the two targets and e_ins(S) + e_del(S) equals the bound.
        For the monomial over all d features this is 2^d - 2; for the binomial with
        S1, S2, S3 covering all d features it is 2^(d+1) - 2^(|S1|+1) - 2^(|S3|+1).

    (b) a single term c * prod_{i=1..d} x_i over all d features, c > 0, l1, one test.
        Symmetry gives alpha_i = a; E(a) is a weighted sum of |a - point| terms, minimised
        at a weighted median:
          deletion:  E(a) = c sum_{k=1..d} C(d,k) |k a/c - 1|, points c/k, weights k C(d,k)
                     = d C(d-1,k-1): median a = c/m, m = floor(d/2) + 1, so
                     E* = c sum_{k=1..d} C(d,k) |k/m - 1|.
          insertion: E(a) = sum_{k<d} C(d,k) k |a| + |c - d a|: a = 0 for d >= 2 (the weight
                     at 0 outweighs the rest), E* = c (only S = [d] is wrong); 0 for d = 1.
    """
    if norm != "l1":
        return None
    names = test_names(tests)
    d = poly.d
    terms = [(t, c) for t, c in zip(poly.terms, poly.coefs) if t]
    if names == ("insertion", "deletion"):
        if all(c >= 0 for _, c in terms):
            return float(sum(c * (2 ** d - 2 ** (d - len(t) + 1)) for t, c in terms))
        return None
    if len(terms) != 1 or len(terms[0][0]) != d or terms[0][1] <= 0:
        return None
    c = terms[0][1]
    if names == ("insertion",):
        return float(c) if d >= 2 else 0.0
    m = d // 2 + 1
    return float(c * sum(Fraction(math.comb(d, k)) * abs(Fraction(k, m) - 1) for k in range(1, d + 1)))
