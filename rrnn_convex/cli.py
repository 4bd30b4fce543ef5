"""The ``rrnn`` command. Exit codes: 0 certified / success, 1 not certified, 2 bad input."""
from __future__ import annotations

import argparse
import sys



def _print_certificate(cert, model) -> None:
    print(f"model           : n={model.n} states, q={model.q} neurons ({model.activation.name}, "
          f"slope in [{model.activation.alpha:g}, {model.activation.beta:g}]), m={model.m}, p={model.p}")
    print(f"model hash      : {cert.model_hash[:16]}...")
    print(f"contracting     : {cert.contracting}")
    print(f"certified gamma : {cert.gamma if cert.gamma is not None else '-'}")
    if cert.contracting:
        print(f"LMI margin      : {cert.margin:.3e} (proven lower bound {cert.proven_margin:.3e})")
        print(f"solver          : {cert.solver} ({cert.status}), {cert.solve_seconds:.2f} s total")
        check = cert.verify(model)
        print(f"verification    : {'PASSED' if check.ok else 'FAILED'} - {check.reason}")
        print(f"method          : {check.method}")
    else:
        print(f"reason          : {cert.reason}")


def _cmd_demo(args) -> int:
    from .certify import certify
    from .examples import example_elman

    model = example_elman(n=args.states, seed=args.seed)
    print("Certifying a built-in example: a random Elman ReLU RNN with ||W||_2 = 0.9\n")
    cert = certify(model)
    _print_certificate(cert, model)
    if args.out:
        cert.to_json(args.out)
        print(f"\ncertificate written to {args.out}")
    return 0 if cert.certified else 1


def _cmd_certify(args) -> int:
    from .certify import certify
    from .model import ImplicitRNN

    model = ImplicitRNN.load(args.model)
    cert = certify(model, gamma=args.gamma, solver=args.solver)
    _print_certificate(cert, model)
    if args.out:
        cert.to_json(args.out)
    return 0 if cert.certified else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="certify a built-in example RNN and print the certificate")
    demo.add_argument("--states", type=int, default=8, help="number of states / neurons (default 8)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", help="write the JSON certificate here")
    demo.set_defaults(func=_cmd_demo)
    cert = sub.add_parser("certify", help="certify a model saved with ImplicitRNN.save (.npz)")
    cert.add_argument("model")
    cert.add_argument("--gamma", type=float, default=None)
    cert.add_argument("--solver", default=None, help="CLARABEL (default), SCS or MOSEK")
    cert.add_argument("--out", help="write the JSON certificate here")
    cert.set_defaults(func=_cmd_certify)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, ImportError) as exc:
        print(f"rrnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
