"""sop.theory: per-feature vs grouped insertion/deletion error, the LPs, certificates, CLI, page, twin."""
import json
import math
from fractions import Fraction

from pathlib import Path

import numpy as np
import pytest

from sop.errors import InputError
from sop.theory import (Attribution, Polynomial, analyse, binomial, brute_force_lp, closed_form,
                        exact_grouped_attribution, lift_reduced_dual, make_polynomial, mobius, model_table,
                        monomial, pairing_bound, parse_range, reduced_lp, shapley_values, subset_errors,
                        symmetry_classes, total_error)
from sop.theory.attribution import attribution_from_terms

# --------------------------------------------------------------------------- hand-computed cases


def test_subset_errors_by_hand_for_a_two_feature_monomial():
    # p = x0 x1, alpha = (0.3, 0.5).  Subsets as bitmasks 0={}, 1={0}, 2={1}, 3={0,1}.
    p, att = monomial(2), Attribution.per_feature([0.3, 0.5])
    # insertion keeps S: true p(1_S) = [S = {0,1}], predicted 0 + alpha(S)
    np.testing.assert_allclose(subset_errors(p, att, 2, "insertion"), [0, 0.3, 0.5, 0.2])
    # deletion removes S: true p(1_{not S}) = [S = {}], predicted 1 - alpha(S)
    np.testing.assert_allclose(subset_errors(p, att, 2, "deletion"), [0, 0.7, 0.5, 0.2])
    assert total_error(p, att, 2) == pytest.approx(2.4)
    assert total_error(p, att, 2, norm="linf") == pytest.approx(0.7)


@pytest.mark.parametrize("d, both, ins, dele", [(1, 0, 0, 0), (2, 2, 1, 1), (3, 6, 1, 2)])
def test_monomial_minimum_errors_match_hand_values(d, both, ins, dele):
    # d=2 deletion: 2|a-1| + |2a-1| >= 1 with equality on [1/2, 1]; d=3 deletion at a=1/2:
    # three singletons 1/2 each, pairs 0, the triple 1/2 -> 2.  Both tests: 2^d - 2.
    p = monomial(d)
    for tests, want in (("both", both), ("insertion", ins), ("deletion", dele)):
        for res in (brute_force_lp(p, d, tests), reduced_lp(p, tests)):
            assert res.value == pytest.approx(want, abs=1e-9)
            assert res.bound <= res.value + 1e-12
            assert res.bound == pytest.approx(want, abs=1e-9)
        assert closed_form(p, tests) == pytest.approx(want)


def test_small_binomial_by_hand():
    # p = x0 x1 + x1 x2.  alpha = (0, 1, 0) misses insertion only on {1} (predicts 1, is 0) and on
    # {0,1,2} (predicts 1, is 2): error 2.  alpha = (1, 1, 1) misses deletion only on removing {1}
    # (predicts 1, is 0) and removing all (predicts -1, is 0): error 2.  The LPs certify both optimal.
    p = binomial(3, (1, 1, 1))
    assert p.describe() == "x0*x1 + x1*x2"
    assert total_error(p, Attribution.per_feature([0, 1, 0]), 3, "insertion") == pytest.approx(2)
    assert total_error(p, Attribution.per_feature([1, 1, 1]), 3, "deletion") == pytest.approx(2)
    for tests in ("insertion", "deletion"):
        res = reduced_lp(p, tests)
        assert res.value == pytest.approx(2) and res.bound == pytest.approx(2, abs=1e-9)
    # both tests: every subset that splits a term costs 1 per term: 2^4 - 2^2 - 2^2 = 8
    assert reduced_lp(p, "both").value == pytest.approx(8) == closed_form(p, "both")


# --------------------------------------------------------------------------- LPs agree


CASES = [("monomial", d, None) for d in (2, 4, 7)] + [("binomial", d, None) for d in (4, 6, 8)] + [
    ("binomial", 7, (2, 1, 2)), ("binomial", 6, (0, 2, 3))]


@pytest.mark.parametrize("kind, d, sizes", CASES)
@pytest.mark.parametrize("tests, norm", [("both", "l1"), ("insertion", "l1"), ("deletion", "l1"), ("both", "linf")])
def test_reduced_lp_equals_brute_force_and_its_alpha_is_measured(kind, d, sizes, tests, norm):
    p = make_polynomial(kind, d, degree=d - 2 if kind == "monomial" and d > 3 else None, sizes=sizes)
    brute, red = brute_force_lp(p, d, tests, norm), reduced_lp(p, tests, norm)
    assert red.value == pytest.approx(brute.value, rel=1e-7, abs=1e-9)
    assert red.variables == len(p.blocks())
    # the LP's alpha, measured over all 2^d subsets by independent code, has the LP's error
    for res in (brute, red):
        assert total_error(p, Attribution.per_feature(res.alpha), d, tests, norm) == pytest.approx(res.value, rel=1e-7,
                                                                                                     abs=1e-9)
        assert res.bound <= res.value + 1e-9
        assert res.bound >= res.value - 1e-9 * max(1.0, res.value)
    cf = closed_form(p, tests, norm)
    if cf is not None:
        assert cf == pytest.approx(red.value, rel=1e-9)


def test_lp_works_for_any_model_table_and_beats_every_sampled_attribution():
    rng = np.random.default_rng(0)
    table = rng.normal(size=32)  # an arbitrary set function on d = 5 features
    res = brute_force_lp(table, 5, "both")
    for _ in range(200):
        alpha = res.alpha + rng.normal(scale=0.3, size=5)
        assert total_error(table, Attribution.per_feature(alpha), 5) >= res.bound - 1e-12
    assert pairing_bound(table, 5) <= res.value + 1e-9


def test_closed_form_both_holds_for_positive_polynomials_and_shapley_attains_it():
    rng = np.random.default_rng(1)
    for _ in range(4):
        terms = tuple(frozenset(int(i) for i in rng.choice(5, size=rng.integers(1, 5), replace=False))
                      for _ in range(3))
        p = Polynomial(5, terms, tuple(float(c) for c in rng.uniform(0.1, 2.0, size=3)))
        want = closed_form(p, "both")
        assert brute_force_lp(p, 5, "both").value == pytest.approx(want, rel=1e-9)
        assert pairing_bound(p, 5) == pytest.approx(want, rel=1e-12)
        assert total_error(p, Attribution.per_feature(shapley_values(model_table(p, 5))), 5) == pytest.approx(want)


# --------------------------------------------------------------------------- certificates


def test_reduced_certificate_lifts_to_an_exactly_feasible_dual_of_the_full_lp():
    d, p = 6, binomial(6, (2, 1, 2))  # one irrelevant feature, four blocks
    res = reduced_lp(p, "both")
    lam = lift_reduced_dual(res, d)
    assert len(lam) == 2 * 2 ** d
    assert all(abs(v) <= 1 for v in lam.values())  # |lambda_S| <= w_S = 1
    for i in range(d):  # A^T lambda = 0, exactly
        assert sum(v for (_, s), v in lam.items() if s >> i & 1) == 0
    table = [Fraction(float(v)) for v in model_table(p, d)]
    full = 2 ** d - 1
    b = {("insertion", s): table[s] - table[0] for s in range(2 ** d)}
    b.update({("deletion", s): table[full] - table[full ^ s] for s in range(2 ** d)})
    assert sum(v * b[k] for k, v in lam.items()) == res.certificate.bound
    assert float(res.certificate.bound) == pytest.approx(res.value, rel=1e-9)


def test_certify_repairs_a_perturbed_dual_into_an_exactly_feasible_one():
    from sop.theory import certify
    res = reduced_lp(binomial(8), "both")
    prob = res.info["problem"]
    y = np.array([float(v) for v in res.certificate.dual()])
    noisy = y + np.random.default_rng(0).normal(scale=1e-3, size=len(y))  # violates A^T y = 0 and the bounds
    cert = certify(prob.A, prob.b, prob.w, noisy, "l1")
    dual = cert.dual()
    for j in range(prob.A.shape[1]):
        assert sum(int(prob.A[r, j]) * dual[r] for r in range(len(dual))) == 0
    assert all(abs(v) <= w for v, w in zip(dual, prob.w))
    assert cert.bound == sum(v * Fraction(float(b)) for v, b in zip(dual, prob.b))
    assert res.value * (1 - 1e-3) <= cert.bound_float <= res.value


def test_d20_reduced_lp_is_fast_exact_and_certified():
    for p, want in ((monomial(20), 2 ** 20 - 2), (binomial(20), 2 ** 21 - 2 ** 8 - 2 ** 8)):
        res = reduced_lp(p, "both")
        assert res.value == pytest.approx(want, rel=1e-12)
        assert want * (1 - 1e-9) <= res.bound <= want
        assert res.seconds + res.certify_seconds < 10
    dele = reduced_lp(monomial(20), "deletion")
    assert dele.value == pytest.approx(closed_form(monomial(20), "deletion"), rel=1e-12)  # 184755
    assert dele.bound == pytest.approx(184755, rel=1e-9)


# --------------------------------------------------------------------------- grouped attribution


@pytest.mark.parametrize("kind, d", [("monomial", 1), ("monomial", 5), ("binomial", 6), ("binomial", 16)])
def test_grouped_attribution_computed_from_f_has_exactly_zero_error(kind, d):
    p = make_polynomial(kind, d)
    table = model_table(p, d)
    att = exact_grouped_attribution(table)
    assert sorted(att.groups) == sorted(attribution_from_terms(p.terms, p.coefs).groups)
    for tests in ("insertion", "deletion", "both"):
        assert total_error(table, att, d, tests) == 0.0
        assert total_error(table, att, d, tests, norm="linf") == 0.0
    # ... while the same groups with a wrong score, or split into features, are not exact
    wrong = Attribution(att.groups, tuple(c + 0.5 for c in att.scores))
    assert total_error(table, wrong, d) > 0
    if d > 1:
        assert total_error(table, Attribution.per_feature(shapley_values(table)), d) > 0


def test_grouped_error_beyond_enumeration_uses_symmetry_classes():
    p = binomial(30)
    _, reps, sizes = symmetry_classes(p.blocks())
    assert sum(sizes) == 2 ** 30
    classes = (reps, np.array(sizes, dtype=float))
    assert total_error(p, attribution_from_terms(p.terms, p.coefs), 30, classes=classes) == 0.0
    # class-weighted evaluation agrees with full enumeration where both are possible
    q = binomial(9)
    _, r9, s9 = symmetry_classes(q.blocks())
    alpha = Attribution.per_feature(np.full(9, 0.2))
    assert total_error(q, alpha, 9, classes=(r9, np.array(s9, float))) == pytest.approx(total_error(q, alpha, 9))


def test_mobius_recovers_polynomial_coefficients():
    p = Polynomial(4, (frozenset({0, 2}), frozenset({1}), frozenset()), (2.5, -1.0, 0.75))
    mu = mobius(model_table(p, 4))
    assert mu[0b0101] == pytest.approx(2.5) and mu[0b0010] == pytest.approx(-1.0) and mu[0] == pytest.approx(0.75)
    assert np.count_nonzero(np.abs(mu) > 1e-12) == 3


# --------------------------------------------------------------------------- CLI


def test_cli_prints_the_table_and_saves_plot_and_data(tmp_path, capsys):
    from sop.cli import main
    out = tmp_path / "bin.html"
    assert main(["theory", "--poly", "binomial", "--d", "2..7", "--brute-max", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    table = {int(line.split()[0]): line.split() for line in text.splitlines() if line[:3].strip().isdigit()}
    assert sorted(table) == [2, 3, 4, 5, 6, 7]
    data = json.loads(out.with_suffix(".json").read_text())
    for row in data["rows"]:
        want = analyse(binomial(row["d"]), brute_max=0)
        assert row["per_feature"] == pytest.approx(want.per_feature) and row["grouped"] == 0.0
        assert float(table[row["d"]][1].replace(",", "")) == pytest.approx(want.per_feature)
        assert (row["brute"] is None) == (row["d"] > 5)
    assert table[6][1] == "112" and table[6][5] == "0"  # 2^7 - 2^3 - 2^3, grouped 0
    assert "fit: per-feature min ~ exp(" in text
    html = out.read_text()
    assert "plotly" in html and '"type":"log"' in html.replace(" ", "")
    assert out.with_suffix(".csv").read_text().startswith("d,poly,formula,per_feature")


def test_cli_writes_into_runs_theory_by_default_not_the_current_folder(tmp_path, monkeypatch, capsys):
    from sop.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["theory", "--d", "2..3", "--brute-max", "0", "--no-plot"]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["runs/theory/theory_monomial.csv", "runs/theory/theory_monomial.json"]
    assert "wrote runs/theory/theory_monomial.json" in capsys.readouterr().out
    assert main(["theory", "--poly", "binomial", "--d", "4", "--brute-max", "0"]) == 0  # with the plot
    assert {p.name for p in tmp_path.iterdir()} == {"runs"}
    assert {"theory_binomial.html", "theory_binomial.json", "theory_binomial.csv"} <= {
        p.name for p in (tmp_path / "runs" / "theory").iterdir()}


def test_cli_rejects_bad_ranges(capsys):
    from sop.cli import main
    assert main(["theory", "--d", "9..3"]) == 2
    assert "bad range" in capsys.readouterr().err
    assert main(["theory", "--poly", "binomial", "--sizes", "1,2"]) == 2
    with pytest.raises(InputError):
        parse_range("two")
    assert parse_range("2..8:3,20") == [2, 5, 8, 20]


# --------------------------------------------------------------------------- explorer page


@pytest.fixture(scope="module")
def page():
    from streamlit.testing.v1 import AppTest
    return AppTest.from_file(str(Path(__file__).resolve().parent.parent / "explorer" / "pages" / "theory.py"),
                             default_timeout=120)


def _frame_matches(frame, kind, ds, tests="both", norm="l1", degree=None, sizes=None):
    assert list(frame["d"]) == list(ds)
    for _, r in frame.iterrows():
        want = analyse(make_polynomial(kind, int(r["d"]), degree=degree, sizes=sizes), tests, norm, brute_max=0,
                       exhaustive_max=16)
        assert r["best per-feature error (LP)"] == pytest.approx(want.per_feature, rel=1e-9)
        assert r["certified lower bound"] == pytest.approx(want.bound, rel=1e-9)
        assert r["Shapley values' error"] == pytest.approx(want.shapley, rel=1e-9)
        assert r["grouped error"] == 0.0


def test_page_table_and_toy_show_what_sop_theory_computes(page):
    at = page.run()
    assert not at.exception
    _frame_matches(at.dataframe[0].value, "monomial", range(2, 15))
    assert at.dataframe[0].value["closed form"].tolist() == [2.0 ** d - 2 for d in range(2, 15)]

    at.radio(key="th_poly").set_value("binomial")
    at.radio(key="th_tests").set_value("deletion")
    at.slider(key="th_d").set_value((5, 9))
    at.checkbox(key="th_custom").check()
    at.run()
    at.number_input(key="th_s1").set_value(1)
    at.number_input(key="th_s2").set_value(2)
    at.number_input(key="th_s3").set_value(2)
    at.run()
    assert not at.exception
    _frame_matches(at.dataframe[0].value, "binomial", range(5, 10), tests="deletion", sizes=(1, 2, 2))

    # the toy: 4 features, p = x0*x1*x2 + x1*x2*x3; switch x0 and x2 off
    at.checkbox(key="th_custom").uncheck()
    at.radio(key="th_tests").set_value("both")
    at.slider(key="th_toy_d").set_value(4)
    at.run()
    for i, v in enumerate((False, True, False, True)):
        (at.checkbox(key=f"th_x{i}").check if v else at.checkbox(key=f"th_x{i}").uncheck)()
    at.run()
    assert not at.exception
    shown = {m.label: (float(m.value), m.delta) for m in at.metric}
    p = binomial(4)
    table = model_table(p, 4)
    alpha = Attribution.per_feature(shapley_values(table))
    on = 0b1010
    assert shown["insertion: model output"][0] == table[on] == 0
    assert shown["deletion: model output"][0] == table[0b0101] == 0
    for test in ("insertion", "deletion"):
        err = subset_errors(table, alpha, 4, test, np.array([on]))[0]
        assert shown[f"{test}: per-feature prediction"][1] == f"error {err:.4g}"
        assert shown[f"{test}: grouped prediction"][1] == "error 0"
    # the two per-feature errors add up to at least the unavoidable clash |p(x) + p(OFF) - p(1) - p(0)| = 2
    total = sum(float(shown[f"{t}: per-feature prediction"][1].split()[1]) for t in ("insertion", "deletion"))
    assert total >= 2 - 1e-9
    assert any("differ by **2**" in box.value for box in at.info)


# --------------------------------------------------------------------------- empirical twin


@pytest.mark.slow
def test_twin_sop_is_near_exact_on_monomial_data_where_per_feature_methods_are_not():
    """Seeded run (d = 6, monomial, 600 steps, 4 groups).  Thresholds: SOP fits p within 0.01 and its
    own grouped explanation errs by at most 0.05 per test on average; every per-feature explanation
    (LIME, KernelSHAP, IG, exact Shapley, LP optimum) of either model errs by at least 0.4 per test
    (the theory says 62/128 = 0.484 for p itself)."""
    from sop.theory.twin import TwinConfig, run_twin
    rep = run_twin(TwinConfig(poly="monomial", d=6, seed=0))
    assert rep.theory_min == pytest.approx(62)
    assert rep.fit["SOP"] <= 0.01 and rep.fit["backbone"] <= 0.05
    assert rep.row("SOP", "SOP groups").mean <= 0.05
    per_feature = [r for r in rep.rows if r.kind == "per-feature"]
    assert {r.method for r in per_feature} >= {"LIME", "KernelSHAP", "Integrated Gradients", "exact Shapley",
                                                 "best per-feature (LP)"}
    assert all(r.mean >= 0.4 for r in per_feature)
    for model in ("SOP", "backbone"):  # the LP optimum is a floor for every per-feature method
        best = rep.row(model, "best per-feature (LP)").total
        assert all(r.total >= best - 1e-6 for r in per_feature if r.model == model)
        assert best >= rep.pairing[model] - 1e-6  # the LP-free lower bound holds too
    assert rep.row("backbone", "Mobius groups (all interactions)").total == pytest.approx(0, abs=1e-9)
    assert math.isclose(sum(c for _, c in rep.sop_groups), 1.0, abs_tol=0.02)  # F(1) - F(0) = 1
