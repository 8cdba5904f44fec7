"""Theory made runnable: per-feature attributions fail on features that act together, groups do not.

The paper's Section 2 argues with monomials p(x) = prod_{i in S} x_i and binomials
p(x) = prod_{S1 u S2} x_i + prod_{S2 u S3} x_j over binary x.  This package computes
its claims instead of citing them:

  attribution  the insertion / deletion error of per-feature and grouped attributions
               (definitions and formulas in its docstring), measured over all 2^d subsets;
  lp           the minimum total error over all per-feature attributions (HiGHS), by brute
               force and by a symmetry reduction, with an exactly verified dual certificate
               (a lower bound) and the closed forms that we could prove;
  sweep        the per-d table and log-scale plot behind `python -m sop theory`;
  twin         the empirical twin: SOP and a plain MLP trained on data labelled by p, their
               explanations (SOP's groups, LIME, KernelSHAP, IG, Shapley, LP optimum) measured
               with the same error (needs torch and captum; imported on demand).

See docs/theory.md for the results and timings.
"""
from .attribution import (NORMS, TESTS, Attribution, all_subsets, attribution_from_terms,
                          exact_grouped_attribution, mobius, model_table, shapley_values,
                          subset_errors, total_error)
from .lp import (Certificate, LPResult, brute_force_lp, certify, closed_form, lift_reduced_dual,
                 pairing_bound, reduced_lp, symmetry_classes)
from .polynomials import Polynomial, binomial, binomial_sizes, features_of, make_polynomial, mask_of, monomial
from .sweep import Row, analyse, figure, fit_exponential, parse_range, shapley_from_terms, sweep

__all__ = [
    "NORMS", "TESTS", "Attribution", "Certificate", "LPResult", "Polynomial", "Row", "all_subsets", "analyse",
    "attribution_from_terms", "binomial", "binomial_sizes", "brute_force_lp", "certify", "closed_form",
    "exact_grouped_attribution", "features_of", "figure", "fit_exponential", "lift_reduced_dual",
    "make_polynomial", "mask_of", "mobius", "model_table", "monomial", "pairing_bound", "parse_range",
    "reduced_lp", "shapley_from_terms", "shapley_values", "subset_errors", "sweep", "symmetry_classes",
    "total_error",
]
