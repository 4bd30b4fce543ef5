"""The four measured system-identification benchmarks, one after another, in one table.

Each benchmark runs its fixed recipe (``rrnn_convex.experiments.sysid.RECIPES``): a certified
contracting model and an N4SID linear model fitted in the same run, both scored on the official
test sets (initial state from each record's first ``init`` samples, RMSE in the benchmark's
units, both init lengths where the data notes and the nonlinear_benchmarks loader differ), next
to published figures. Every fit has a 13-minute budget (a whole benchmark stays under 15
minutes); the table is printed as each benchmark finishes and written to ``OUT/results.md``.

    python benchmarks/sysid_benchmarks.py --out sysid_results            # about 20 minutes on 2 cores
    python benchmarks/sysid_benchmarks.py --only cascaded_tanks --quick  # smoke test

Data: ``--data DIR`` (default: $RRNN_DATA, else ../shared/data/sysid beside the checkout).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from rrnn_convex._io import write_text_atomic
from rrnn_convex.experiments.sysid import RECIPES, run, table

#: ``../shared/data`` beside the repository (msd_dataset/, sysid/): named as RRNN_DATA unless already set
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="sysid_results", help="output folder (one sub-folder per benchmark)")
    ap.add_argument("--data", default=None, help="folder with the benchmark files (default: $RRNN_DATA/sysid, else ../shared/data/sysid beside the repository, else the nonlinear_benchmarks download cache)")
    ap.add_argument("--only", nargs="+", choices=sorted(RECIPES), default=None)
    ap.add_argument("--quick", action="store_true", help="small models, 20 s budgets: a smoke test, not a result")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if SHARED_DATA.is_dir():
        os.environ.setdefault("RRNN_DATA", str(SHARED_DATA))
    names = args.only or ["cascaded_tanks", "silverbox", "emps", "coupled_electric_drives"]
    out = Path(args.out)
    print(f"# sysid benchmarks: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"recipes {'(quick)' if args.quick else ''}", flush=True)
    for name in names:
        r = RECIPES[name]
        print(f"#   {name}: n = {r.n_states}, q = {r.n_neurons} {r.activation}, budget {r.time_budget:g} s; {r.note}")
    results, lines = [], []
    t0 = time.perf_counter()
    for name in names:
        res = run(name, out / name, quick=args.quick, folder=args.data, seed=args.seed, log=lambda *_: None)
        results.append(res)
        lines += table(res) + [""]
        print("\n".join(table(res)) + "\n", flush=True)
    lines.append(f"total wall time {time.perf_counter() - t0:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.md", "\n".join(lines) + "\n")
    print(f"written: {out / 'results.md'}")
    return results


if __name__ == "__main__":
    main()
