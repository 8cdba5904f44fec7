"""Multilinear polynomials over binary features: the models the theory is about.

A polynomial is a sum of terms c_m * prod_{i in M_m} x_i with x in {0, 1}^d.  The two
families of the paper (Section 2):

    monomial  p(x) = prod_{i in S} x_i
    binomial  p(x) = prod_{i in S1 u S2} x_i + prod_{j in S2 u S3} x_j   (S1, S2, S3 disjoint)

Features are numbered 0..d-1; a set of features is also written as a bitmask
(bit i set <=> feature i in the set), which is how subsets are enumerated elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


def mask_of(features) -> int:
    """Bitmask of a collection of feature indices."""
    m = 0
    for i in features:
        m |= 1 << int(i)
    return m


def features_of(mask: int) -> tuple[int, ...]:
    """Feature indices of a bitmask, increasing."""
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


@dataclass(frozen=True)
class Polynomial:
    """p(x) = sum_m coef_m * prod_{i in terms_m} x_i over d features.

    `terms` are frozensets of feature indices; the empty set is a constant term.
    """
    d: int
    terms: tuple[frozenset[int], ...]
    coefs: tuple[float, ...]
    name: str = "polynomial"

    def __post_init__(self):
        if self.d < 1:
            raise InputError(f"d must be at least 1, got {self.d}")
        if len(self.terms) != len(self.coefs):
            raise InputError("terms and coefs must have the same length")
        for t in self.terms:
            if any(i < 0 or i >= self.d for i in t):
                raise InputError(f"term {sorted(t)} uses a feature outside 0..{self.d - 1}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Evaluate on inputs x of shape (..., d); works for real x, not only binary."""
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.d:
            raise InputError(f"expected inputs with {self.d} features, got shape {x.shape}")
        out = np.zeros(x.shape[:-1])
        for t, c in zip(self.terms, self.coefs):
            out = out + c * (np.prod(x[..., sorted(t)], axis=-1) if t else 1.0)
        return out

    def blocks(self) -> list[tuple[int, ...]]:
        """Features grouped by which terms contain them (the symmetry blocks).

        Permuting features inside a block maps every term to itself, so p is invariant;
        the symmetry-reduced LP needs one variable per block.  Blocks are ordered by
        their first feature; each is a tuple of feature indices.
        """
        sig: dict[tuple[bool, ...], list[int]] = {}
        for i in range(self.d):
            sig.setdefault(tuple(i in t for t in self.terms), []).append(i)
        return sorted((tuple(v) for v in sig.values()), key=lambda b: b[0])

    def describe(self) -> str:
        """Human-readable formula, e.g. 'x0*x1 + x1*x2'."""
        parts = []
        for t, c in zip(self.terms, self.coefs):
            body = "*".join(f"x{i}" for i in sorted(t)) or "1"
            parts.append(body if c == 1 else f"{c:g}*{body}")
        return " + ".join(parts) if parts else "0"


def monomial(d: int, degree: int | None = None) -> Polynomial:
    """p(x) = prod_{i in S} x_i with S = the first `degree` features (all d by default)."""
    degree = d if degree is None else degree
    if not 1 <= degree <= d:
        raise InputError(f"monomial degree must be in 1..{d}, got {degree}")
    return Polynomial(d, (frozenset(range(degree)),), (1.0,), name=f"monomial(d={d}, |S|={degree})")


def binomial_sizes(d: int) -> tuple[int, int, int]:
    """Default (|S1|, |S2|, |S3|): the d features split as evenly as possible.

    The remainder goes to S2 when d = 1 (mod 3) and to S1 and S3 when d = 2 (mod 3), so
    the two terms always have the same degree.  For d = 2 this is (1, 0, 1): x0 + x1,
    which is linear, so every error is 0 there.
    """
    q, r = divmod(d, 3)
    return {0: (q, q, q), 1: (q, q + 1, q), 2: (q + 1, q, q + 1)}[r]


def binomial(d: int, sizes: tuple[int, int, int] | None = None) -> Polynomial:
    """p(x) = prod_{S1 u S2} x_i + prod_{S2 u S3} x_j; S1, S2, S3 consecutive feature blocks.

    Features beyond |S1| + |S2| + |S3| do not appear in p (they are irrelevant).
    """
    n1, n2, n3 = binomial_sizes(d) if sizes is None else sizes
    if min(n1, n2, n3) < 0 or n1 + n2 + n3 > d:
        raise InputError(f"binomial sizes {(n1, n2, n3)} must be >= 0 and sum to at most d={d}")
    if n1 + n2 == 0 or n2 + n3 == 0:
        raise InputError(f"binomial sizes {(n1, n2, n3)} leave a term with no feature")
    s1 = range(0, n1)
    s2 = range(n1, n1 + n2)
    s3 = range(n1 + n2, n1 + n2 + n3)
    terms = (frozenset(s1) | frozenset(s2), frozenset(s2) | frozenset(s3))
    return Polynomial(d, terms, (1.0, 1.0), name=f"binomial(d={d}, sizes={(n1, n2, n3)})")


def make_polynomial(kind: str, d: int, *, degree: int | None = None,
                    sizes: tuple[int, int, int] | None = None) -> Polynomial:
    """`kind` is 'monomial' or 'binomial'."""
    if kind == "monomial":
        return monomial(d, degree)
    if kind == "binomial":
        return binomial(d, sizes)
    raise InputError(f"unknown polynomial {kind!r}; choose 'monomial' or 'binomial'")
