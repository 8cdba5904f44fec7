"""`python -m sop theory`: why SOP explains with groups, computed rather than asserted.

For a monomial or binomial over d binary features, prints per d the smallest total
insertion/deletion error any per-feature attribution can have (an LP), a certified lower
bound (an exactly feasible dual point), the closed form where one is proved, the error
of Shapley values, and the error of the grouped attribution (exactly 0), with timings;
saves a log-scale plot (HTML) and the table (JSON, CSV), by default as
runs/theory/theory_<poly>.html/.json/.csv (the folder is created; `--out` names another
plot path).  `--twin` also trains the empirical twin (SOP vs LIME / KernelSHAP / IG on data
labelled by the polynomial).

    python -m sop theory --poly binomial --d 2..20
    python -m sop theory --poly monomial --d 2..20 --tests deletion --out runs/theory/mono_del.html
    python -m sop theory --poly monomial --d 2..8 --twin
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import time
from pathlib import Path

from ..errors import InputError

DEFAULT_OUT_DIR = Path("runs/theory")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "theory", help="per-feature vs grouped attribution error on monomials/binomials (LP, certified bounds)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--poly", choices=["monomial", "binomial"], default="monomial",
                   help="monomial: prod_{i in S} x_i;  binomial: prod_{S1 u S2} x_i + prod_{S2 u S3} x_j")
    p.add_argument("--d", default="2..20", help="numbers of features: 2..20, 4,8,12 or 2..20:2 (default 2..20)")
    p.add_argument("--degree", type=int, default=None, help="monomial: |S| (default: all d features)")
    p.add_argument("--sizes", default=None,
                   help="binomial: |S1|,|S2|,|S3| (default: d split evenly); features beyond the sum are irrelevant")
    p.add_argument("--tests", choices=["both", "insertion", "deletion"], default="both",
                   help="which tests the total error sums (default both)")
    p.add_argument("--norm", choices=["l1", "linf"], default="l1",
                   help="l1: sum of the errors of all subsets (default); linf: the largest one")
    p.add_argument("--brute-max", type=int, default=12,
                   help="also solve the brute-force LP (2^d rows per test) up to this d; at most 18 (default 12)")
    p.add_argument("--out", default=None,
                   help="plot path (.html); the table goes next to it as .json and .csv "
                        "(default runs/theory/theory_<poly>.html under the current folder, created as needed)")
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    p.add_argument("--twin", action="store_true", help="also train and measure the empirical twin")
    p.add_argument("--twin-d", type=int, default=6, help="features of the twin's data (default 6)")
    p.add_argument("--twin-groups", type=int, default=4, help="SOP groups in the twin (default 4)")
    p.add_argument("--twin-steps", type=int, default=1000, help="training steps per twin model (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the twin (default 0)")
    p.set_defaults(func=run)


def _sizes(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 3:
        raise InputError(f"--sizes wants three integers |S1|,|S2|,|S3|, got {text!r}")
    return sizes


def _save(rows, fit, args, out: Path, twin=None) -> list[Path]:
    from ..theory.sweep import figure
    out.parent.mkdir(parents=True, exist_ok=True)
    records = [r.as_dict() for r in rows]
    data = {"poly": args.poly, "tests": args.tests, "norm": args.norm,
            "fit": None if fit is None else {"gamma1": fit[0], "gamma0": fit[1]}, "rows": records}
    if twin is not None:
        data["twin"] = twin.as_dict()
    written = [out.with_suffix(".json"), out.with_suffix(".csv")]
    written[0].write_text(json.dumps(data, indent=2))
    with written[1].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    if not args.no_plot:
        fig = figure(rows)
        fig.write_html(str(out), include_plotlyjs=True)
        written.append(out)
        if importlib.util.find_spec("kaleido") is not None:  # static image only if kaleido is installed
            fig.write_image(str(out.with_suffix(".png")))
            written.append(out.with_suffix(".png"))
    return written


def run(args: argparse.Namespace) -> int:
    from ..theory.lp import MAX_BRUTE_D
    from ..theory.polynomials import make_polynomial
    from ..theory.sweep import fit_exponential, format_header, format_row, parse_range, sweep

    ds = parse_range(args.d)
    sizes = _sizes(args.sizes)
    if not 0 <= args.brute_max <= MAX_BRUTE_D:
        raise InputError(f"--brute-max must be in 0..{MAX_BRUTE_D}")
    example = make_polynomial(args.poly, ds[-1], degree=args.degree, sizes=sizes)
    print(f"{args.poly}, e.g. d = {ds[-1]}: p(x) = {example.describe()}")
    print(f"explained input x = 1 (all features on), removed features set to 0; "
          f"total error = {args.norm} over all 2^d subsets of {args.tests} test(s)")
    print(format_header(), flush=True)
    t0 = time.perf_counter()
    rows = sweep(args.poly, ds, degree=args.degree, sizes=sizes, tests=args.tests, norm=args.norm,
                 brute_max=args.brute_max, on_row=lambda r: print(format_row(r), flush=True))
    fit = fit_exponential(rows)
    print(f"\n{len(rows)} rows in {time.perf_counter() - t0:.1f} s.  'LP s' = symmetry-reduced LP "
          f"(build + solve + certify); 'brute s' = LP over all 2^d subsets.")
    if fit is not None:
        print(f"fit: per-feature min ~ exp({fit[0]:.4f} d {fit[1]:+.4f})  (2^d would be exp(0.6931 d))")
    worst = max(r.grouped for r in rows)
    print(f"grouped attribution (groups = the polynomial's terms, computed from f): largest error {worst:g}")
    twin = None
    if args.twin:
        from ..theory.twin import TwinConfig, format_report, run_twin
        # the twin's d is small: --degree is clipped to it, a binomial uses the even split
        degree = None if args.degree is None else min(args.degree, args.twin_d)
        cfg = TwinConfig(poly=args.poly, d=args.twin_d, degree=degree, num_groups=args.twin_groups,
                         steps=args.twin_steps, seed=args.seed, tests=args.tests, norm=args.norm)
        print("\ntraining the empirical twin ...", flush=True)
        twin = run_twin(cfg)
        print(format_report(twin))
    out = Path(args.out) if args.out else DEFAULT_OUT_DIR / f"theory_{args.poly}.html"
    for path in _save(rows, fit, args, out, twin):
        print(f"wrote {path}")
    return 0
