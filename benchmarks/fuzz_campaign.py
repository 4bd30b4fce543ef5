"""Large fuzzing campaign of certify / verify / project (issue 9, item 1).

Runs the property checks of tests/test_fuzz.py (exact rational LMI check, stepwise dissipation /
contraction along simulated trajectory pairs, sampled incremental gain, the Lipschitz lower
bound, tampering) over many random models until a time or case budget is spent, then prints a
table: cases run, certified, verified, false certificates found (must be 0), failures by category.

    nice -n 15 python benchmarks/fuzz_campaign.py --minutes 10 [--seed 1] [--json out.json]
    nice -n 15 python benchmarks/fuzz_campaign.py --d11 none,lower,general --cases 300

``--d11`` chooses the equilibrium term of the models (issue 18): ``none`` (D11 = 0, the default),
``lower`` (strictly lower triangular after a random permutation of the neurons) or ``general``
(cyclic, well posed by construction, half of them near the edge of well-posedness); a comma list
or ``all`` runs one campaign per kind (``--minutes`` and ``--cases`` apply to each) and ends with
a table by kind: models, certified, verified, false certificates, exceptions, wall time.

Every case is reproducible from its printed ``Spec`` (``build_model(Spec(...))``). Exit status 1
if any violation (false certificate, crash, unclear answer) was found. The hypothesis-driven
variant of the same properties: ``RRNN_FUZZ=campaign pytest tests/test_fuzz.py``.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_fuzz import (build_model, fixed_gamma_case, fuzz_case, project_case,  # noqa: E402
                       random_spec)


def is_false(violation: str) -> bool:
    """A violation that means a claim of a verified certificate is untrue."""
    return any(w in violation for w in ("FALSE", "violated", "did not decrease", "> gamma", "fails verify"))


D11_CHOICES = ("none", "lower", "general")


def d11_kinds(text: str) -> list[str]:
    """The kinds named by ``--d11`` (a comma list, or ``all``)."""
    kinds = list(D11_CHOICES) if text == "all" else [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in D11_CHOICES]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"--d11: expected a comma list of {', '.join(D11_CHOICES)} or 'all', "
                                         f"got {text!r}")
    return kinds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    ap.add_argument("--cases", type=int, default=None, help="stop after this many certify cases")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-log-contraction", type=float, default=0.3,
                    help="log10 of the largest small-gain bound drawn (> 0: some models not contracting)")
    ap.add_argument("--max-log-cond", type=float, default=11.0,
                    help="log10 of the largest cond(E) drawn for ill-conditioned E (constructor limit 1e12)")
    ap.add_argument("--project-every", type=int, default=8, help="one project() case every k cases (0: none)")
    ap.add_argument("--fixed-gamma-every", type=int, default=4, help="one fixed-gamma case every k cases (0: none)")
    ap.add_argument("--lipschitz-every", type=int, default=3, help="run the Lipschitz optimiser every k cases")
    ap.add_argument("--json", type=str, default=None, help="write every violation (with its Spec) here")
    ap.add_argument("--d11", type=d11_kinds, default=["none"],
                    help="equilibrium term: none, lower, general, a comma list or all (one campaign each)")
    args = ap.parse_args(argv)

    summary, all_violations, payload = [], [], {}
    for kind in args.d11:
        row, violations, stats, categories = campaign(args, kind)
        summary.append(row)
        all_violations += violations
        payload[kind] = {"stats": dict(stats), "categories": dict(categories), "violations": violations}
    if len(summary) > 1 or args.d11 != ["none"]:
        print()
        print(f"by D11 kind (seed {args.seed}):")
        head = ("D11", "models", "rejected by the model", "certified", "verified", "false certificates",
                "exceptions", "violations", "wall s")
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for r in summary:
            print("| " + " | ".join(str(r[k]) for k in ("kind", "cases", "rejected", "certified", "verified", "false",
                                                           "exceptions", "violations", "seconds")) + " |")
    if args.json:
        out = payload["none"] if args.d11 == ["none"] else payload
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    _ = build_model  # re-exported for reproducing a case: build_model(Spec(**spec))
    return 1 if all_violations else 0


def campaign(args, kind: str):
    """One campaign over models with D11 ``kind``; prints its report and returns
    (summary row, violations, stats, categories)."""
    # D11 = 0 draws exactly the specs it always drew for a seed; the other kinds their own streams
    rng = np.random.default_rng(args.seed if kind == "none" else [args.seed, D11_CHOICES.index(kind)])
    t_end = time.perf_counter() + 60.0 * args.minutes
    t0 = time.perf_counter()
    stats = collections.Counter()
    categories = collections.Counter()
    by_act = collections.defaultdict(collections.Counter)
    by_e = collections.defaultdict(collections.Counter)
    violations = []
    gammas = []
    i = 0
    while time.perf_counter() < t_end and (args.cases is None or i < args.cases):
        spec = random_spec(rng, args.max_log_contraction, args.max_log_cond, d11=kind)
        contraction_only = i % 10 == 9
        res = fuzz_case(spec, lipschitz=(i % max(args.lipschitz_every, 1) == 0), contraction_only=contraction_only)
        stats["cases"] += 1
        stats["certified"] += res.certified
        stats["verified"] += res.verified
        stats["contraction_only cases"] += contraction_only
        stats["tampered certificates rejected"] += res.tampered_rejected
        stats["tampered certificates still valid (re-judged)"] += res.tampered_accepted
        categories[res.category] += 1
        by_act[spec.activation][res.category.split(":")[0]] += 1
        by_e[spec.e_kind][res.category.split(":")[0]] += 1
        if res.gamma is not None:
            gammas.append(res.gamma)
        if not res.certified and spec.log_contraction <= np.log10(0.95) and not res.category.startswith("model"):
            # contracting by the small-gain bound, yet not certified: incompleteness, not a lie
            stats[f"missed: small-gain contractive, not certified (E {spec.e_kind})"] += 1
        if res.exception:
            stats["exceptions"] += 1
        for v in res.violations:
            kind = ("false certificate" if is_false(v) else "completeness" if "COMPLETENESS" in v else "other")
            stats[f"violations: {kind}"] += 1
            violations.append({"case": i, "kind": kind, "what": "certify", "spec": asdict(spec), "violation": v})
        def checked(kind, fn, *a, **extra):
            """Run one extra case; record its violations (an exception counts as one)."""
            try:
                out = fn(spec, *a)
            except Exception as exc:  # noqa: BLE001
                out = [f"exception: {exc!r}"]
            for v in out:
                stats[f"violations: {kind}"] += 1
                violations.append({"case": i, "kind": kind, "spec": asdict(spec), **extra, "violation": v})

        if args.fixed_gamma_every and i % args.fixed_gamma_every == 1:
            factor = float(rng.choice([0.5, 0.99, 0.999, 1.001, 1.01, 2.0, 1e3]))
            stats["fixed-gamma cases"] += 1
            checked("fixed gamma", fixed_gamma_case, factor, factor=factor)
        if args.project_every and i % args.project_every == 2 and spec.e_kind != "ill":
            gf = [None, 2.0, 20.0][int(rng.integers(3))]
            stats["project cases"] += 1
            checked("project", project_case, gf, gamma_factor=gf)
        i += 1
        if i % 200 == 0:
            print(f"  ... {i} cases, {time.perf_counter() - t0:.0f} s, violations so far {len(violations)}",
                  flush=True)

    elapsed = time.perf_counter() - t0
    false_certs = sum(1 for v in violations if is_false(v["violation"]))
    print()
    print(f"fuzz campaign: D11 {kind}, seed {args.seed}, {elapsed:.0f} s, "
          f"{stats['cases'] / max(elapsed, 1e-9):.1f} cases/s")
    print("-" * 64)
    rows = [("cases run", stats["cases"]), ("certified", stats["certified"]), ("verified", stats["verified"]),
            ("  of which contraction_only", stats["contraction_only cases"]),
            ("fixed-gamma cases", stats["fixed-gamma cases"]), ("project cases", stats["project cases"]),
            ("tampered certificates rejected", stats["tampered certificates rejected"]),
            ("tampered certificates still valid (re-judged)", stats["tampered certificates still valid (re-judged)"]),
            ("exceptions (crashes)", stats["exceptions"]),
            ("FALSE CERTIFICATES FOUND (must be 0)", false_certs)]
    for k, v in rows:
        print(f"{k:<48}{v:>10}")
    print("-" * 64)
    print("outcome by category:")
    for k, v in categories.most_common():
        print(f"  {k:<62}{v:>8}")
    for k, v in sorted(stats.items()):
        if k.startswith("missed"):
            print(f"  {k:<62}{v:>8}")
    print("violations by kind:")
    kinds = {k: v for k, v in stats.items() if k.startswith("violations")}
    if not kinds:
        print("  none")
    for k, v in sorted(kinds.items()):
        print(f"  {k:<62}{v:>8}")
    print("certified / cases by activation:")
    for a, c in sorted(by_act.items()):
        print(f"  {a:<14} {c['certified']:>6} / {sum(c.values()):<6}")
    print("certified / cases by E kind:")
    for e, c in sorted(by_e.items()):
        print(f"  {e:<14} {c['certified']:>6} / {sum(c.values()):<6}")
    if gammas:
        g = np.array(gammas)
        print(f"certified gamma range: {g.min():.3g} .. {g.max():.3g} (median {np.median(g):.3g})")
    for v in violations[:20]:
        print(f"VIOLATION case {v['case']} [{v['kind']}]: {v['violation'][:300]}\n    spec={v['spec']}")
    rejected = sum(v for k, v in categories.items() if k.startswith("model rejected"))
    row = {"kind": kind, "cases": stats["cases"], "rejected": rejected, "certified": stats["certified"], "verified": stats["verified"],
           "false": false_certs, "exceptions": stats["exceptions"], "violations": len(violations),
           "seconds": round(elapsed)}
    return row, violations, stats, categories


if __name__ == "__main__":
    sys.exit(main())
