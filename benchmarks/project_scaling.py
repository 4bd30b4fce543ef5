"""Project random non-contracting Elman ReLU RNNs (n = q, m = p = 1, spectral radius of W 1.5)
onto Theta and Theta_5: wall time (SDP + re-certification), distance moved (normalised
Frobenius norm, see rrnn_convex.project), certified gamma and the rigorous verification result.

    python benchmarks/project_scaling.py [--sizes 8 16 32 64] [--repeats 1]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.project import project


def unstable_elman(n: int, seed: int = 0, radius: float = 1.5) -> ImplicitRNN:
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n))
    W *= radius / np.max(np.abs(np.linalg.eigvals(W)))
    return ImplicitRNN.from_elman(W, rng.standard_normal((n, 1)), 0.1 * rng.standard_normal(n),
                                  rng.standard_normal((1, n)) / np.sqrt(n), activation="relu")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--gammas", nargs="+", default=["theta", "5"], help="\"theta\" or a gamma value")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--solver", default=None, help="CLARABEL (default), SCS or MOSEK")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"# project_scaling: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"solver {args.solver or 'CLARABEL (default)'}")
    header = f"{'n=q':>4} {'set':>9} {'seconds':>9} {'distance':>10} {'rel dist':>9} {'cert gamma':>11} {'verified':>8}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        model = unstable_elman(n, args.seed)
        assert not certify(model).certified
        scale = np.sqrt(sum(np.sum(getattr(model.explicit(), k) ** 2)
                            for k in ("E", "F", "B1", "B2", "C2", "D21", "D22")))
        for gs in args.gammas:
            g = None if gs.lower() == "theta" else float(gs)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                pr = project(model, gamma=g, solver=args.solver)
                times.append(time.perf_counter() - t0)
            ok = pr.certificate.verify(pr.model).ok
            name = "Theta" if g is None else f"Theta_{g:g}"
            cg = pr.certificate.gamma
            print(f"{n:>4} {name:>9} {statistics.median(times):>9.2f} {pr.distance:>10.4f} "
                  f"{pr.distance / scale:>9.4f} {cg if cg is not None else float('nan'):>11.5g} {str(ok):>8}",
                  flush=True)


if __name__ == "__main__":
    main()
