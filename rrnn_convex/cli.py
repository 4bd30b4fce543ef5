"""The ``rrnn`` command: certify, verify, project, fit, simulate and export robust RNNs from the shell.

Subcommands (``rrnn <command> --help`` for the options):

  demo      identify the paper's mass-spring-damper system with a certified model (the README's job)
  certify   certify a model file: contraction and the smallest (or a given) incremental l2 gain
  verify    rigorously re-check a JSON certificate against a model file (no solver involved)
  project   the nearest certified model (Theta, or Theta_gamma with --gamma)
  fit       fit a certified model to CSV data
  simulate  simulate a model on the inputs of a CSV file (zero or estimated initial state)
  sweep     fit a grid of model sets, gammas and seeds to CSV data, in parallel (joblib or dask)
  experiment  the paper's comparison on the mass-spring-damper data (baselines, figures, tables)
  benchmark fit and score a measured system-identification benchmark (nonlinearbenchmark.org)
  export    write a model as a PyTorch file (rrnn export MODEL --to torch OUT.pt)

Model files: an ``.npz`` written by ImplicitRNN.save, an ``.npz``/``.json`` of Elman arrays (W, U,
activation; optional b, C, D), an ``.npz`` of explicit REN weights (A, B1, B2, C1, C2, D11, D12,
D21, D22, bx, bv, by, activation), a PyTorch ``.pt`` state_dict of an nn.RNN (one or more
layers) plus a Linear or MLP readout, or a ``.pt`` written by rrnn export (.pt needs the torch
extra); see :mod:`rrnn_convex.io_models`.

Exit codes: 0 success / certified, 1 not certified (or a certificate that does not verify),
2 bad input (missing or malformed file, unknown column, bad option, an output path that is one
of the inputs), 3 internal error (a bug: please report it); errors are one line on stderr,
``rrnn <command>: error: <message>``, never a traceback (``rrnn --debug <command> ...``, or the
environment variable RRNN_TRACEBACK=1, shows one when reporting a bug). Exit code 2 is for what
the user can fix: bad input, a missing optional dependency, an unavailable solver; a fit or
projection that cannot produce a certified model is 1; any other exception is 3. No output overwrites an input file; files
are written atomically, keeping an existing file's permissions and writing through symlinks.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path

from ._io import check_input_file, check_outputs, check_writable, same_file, strict_json
from .errors import MissingDependency, NotCertifiable, SolverUnavailable, UnsupportedDependency
from .sets import ModelSet

EXIT_OK, EXIT_NOT_CERTIFIED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class UserError(ValueError):
    """A problem with the command's input, reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``rrnn <command>: error: ...``) and exit code 2."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------------- printing
def _print_certificate(cert, model) -> bool:
    """Human summary of ``cert`` for ``model``, including the independent re-check; returns it."""
    print(f"model           : n={model.n} states, q={model.q} neurons ({model.activation.name}, "
          f"slope in [{model.activation.alpha:g}, {model.activation.beta:g}]), m={model.m}, p={model.p}")
    print(f"model hash      : {cert.model_hash[:16]}...")
    print(f"contracting     : {cert.contracting}")
    print(f"certified gamma : {cert.gamma if cert.gamma is not None else '-'}")
    if not cert.contracting:
        print(f"reason          : {cert.reason}")
        return False
    print(f"LMI margin      : {cert.margin:.3e} (proven lower bound {cert.proven_margin:.3e})")
    print(f"solver          : {cert.solver} ({cert.status}), {cert.solve_seconds:.2f} s total")
    check = cert.verify(model)
    print(f"verification    : {'PASSED' if check.ok else 'FAILED'} - {check.reason}")
    print(f"method          : {check.method}")
    return check.ok


def _cert_path(model_path: Path) -> Path:
    """``model.npz`` -> ``model.cert.json`` (beside the model)."""
    return model_path.with_suffix(".cert.json")


# ---------------------------------------------------------------------- argument helpers
def _int_at_least(low: int, expected: str):
    """An argparse type: an integer >= ``low``; ``expected`` words the error."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "a non-negative integer")


def _window(text: str):
    """argparse type of --window: 'auto', 'none' or an integer >= 2."""
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', 'none' or a number of samples, got {text!r}") from None
    if v < 2:
        raise argparse.ArgumentTypeError(f"expected a window of at least 2 samples, got {v}")
    return v


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


def _columns(spec: str, option: str) -> list:
    """``"a,b"`` -> ["a", "b"]; all-digit entries are 0-based column indices."""
    items = [s.strip() for s in spec.split(",")]
    if not spec.strip() or any(not s for s in items):
        raise UserError(f"{option}: expected comma-separated column names or 0-based indices, got {spec!r}")
    return [int(s) if s.isdigit() else s for s in items]


def _png_path(path: str | None, option: str = "--plot") -> Path | None:
    """Check a ``--plot`` path and that matplotlib is importable, before any long work."""
    if path is None:
        return None
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise UserError(f"{option}: expected a .png file name, got {path!r}")
    from .plots import require_matplotlib
    require_matplotlib()
    return p


def _npz_out(path: str, option: str = "--out") -> Path:
    """Check an output model path (``.npz``, not a directory)."""
    p = Path(path)
    if p.suffix.lower() != ".npz":
        raise UserError(f"{option}: expected a .npz file name for the model, got {path!r}")
    if p.is_dir():
        raise UserError(f"{option}: {path!r} is a directory")
    return p


def _load_model(args):
    """The model file of ``args.model`` as a :class:`~rrnn_convex.io_models.LoadedModel`."""
    from .io_models import load_model_file
    return load_model_file(args.model, nonlinearity=getattr(args, "nonlinearity", None))


# ---------------------------------------------------------------------- CSV data
def _read_table(path, role: str = "data"):
    """The rows of a CSV file (:class:`~rrnn_convex.datasets.core.CsvTable`), read once."""
    from .datasets.core import CsvTable

    return CsvTable.read(path, role=role)


def _read_sequences(path, inputs: list, outputs: list | None, sequence_column: str | None, role: str = "data",
                    table=None):
    """Read a CSV into u (batch, T, m), y (batch, T, p) or None, sequence labels and column names.

    One file is one sequence, unless it has a sequence column (``sequence_column``, or a column
    named ``sequence`` when not given): its values split the rows into sequences, each a
    contiguous block; a fit needs them of equal length. ``table``: the file's rows when the
    caller has read them already (else they are read here).
    """
    import numpy as np

    path = Path(path)
    table = _read_table(path, role) if table is None else table
    header = table.first_row
    if header is None:
        raise UserError(f"{path}: the file holds no data")
    seq_idx = _sequence_index(path, header, sequence_column, inputs, outputs)
    # the reader needs outputs; without them (simulate) the first input column stands in and is dropped
    data = table.sequence_data(inputs, outputs or inputs[:1], header=True if seq_idx is not None else None)
    u, y = data.u[0], data.y[0]
    names_in, names_out = data.meta["inputs"], data.meta["outputs"]
    _distinct_columns(path, header, names_in, names_out if outputs else [])
    if seq_idx is None:
        return u[None], (y[None] if outputs else None), None, names_in, names_out
    order, blocks = _sequence_blocks(path, table.labels(seq_idx, "sequence column"))
    U = np.stack([u[a:b] for a, b in blocks])
    Y = np.stack([y[a:b] for a, b in blocks]) if outputs else None
    return U, Y, order, names_in, names_out


def _sequence_index(path: Path, header: list, sequence_column: str | None, inputs: list,
                    outputs: list | None) -> int | None:
    """The index of the sequence column (``--sequence-column``, else a column named ``sequence``),
    or None; refuses it as a data column."""
    seq_idx = None
    if sequence_column is not None:
        if sequence_column not in header:
            raise UserError(f"--sequence-column: unknown column {sequence_column!r} in {path.name}; "
                            f"available columns: {', '.join(repr(h) for h in header)}")
        seq_idx = header.index(sequence_column)
    elif header.count("sequence") == 1:
        seq_idx = header.index("sequence")
    if seq_idx is not None:
        for role, cols in (("--inputs", inputs), ("--outputs", outputs or [])):
            if header[seq_idx] in cols or seq_idx in cols:
                raise UserError(f"{role}: {header[seq_idx]!r} is the sequence column, not a data column")
    return seq_idx


def _sequence_blocks(path: Path, rows: list[tuple[int, str]]) -> tuple[list[str], list[tuple[int, int]]]:
    """(labels in order of appearance, (start, stop) data rows of each): every sequence one
    contiguous block, all of equal length."""
    order, blocks = [], {}
    for r, (line, label) in enumerate(rows):
        if label not in blocks:
            order.append(label)
            blocks[label] = [r, r + 1]
        elif blocks[label][1] != r:
            raise UserError(f"{path.name}: line {line}: rows of sequence {label!r} are not contiguous "
                            f"(sort the file by its sequence column)")
        else:
            blocks[label][1] = r + 1
    lengths = {lab: b[1] - b[0] for lab, b in blocks.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k!r}: {v}" for k, v in list(lengths.items())[:6])
        raise UserError(f"{path.name}: sequences have different lengths ({shown}); trim them to equal length")
    return order, [tuple(blocks[lab]) for lab in order]


def _distinct_columns(path: Path, header: list, names_in: list, names_out: list) -> None:
    """Refuse a column selected twice (as an input and an output, or twice in one role).

    ``names_in`` / ``names_out`` are the resolved columns (header names, or indices without a
    header); a header that repeats a name is left to read_csv, which refuses such names.
    """
    if len(set(header)) < len(header):
        return
    chosen = [("--inputs", c) for c in names_in] + [("--outputs", c) for c in names_out]
    for i, (role, col) in enumerate(chosen):
        for other, prev in chosen[:i]:
            if prev == col:
                what = f"selected more than once in {role}" if other == role else "both an input and an output"
                raise UserError(f"{role}: column {col!r} of {path.name} is {what}")


def _check_fit_data(path, U, Y, names_in, names_out, role: str = "data") -> None:
    """Refuse data no model can be fitted to, naming the file and the column: a constant column
    (an input carries no information, an output makes the normalised error undefined), values
    beyond 1e150 or a spread below 1e-150 (their squares overflow / underflow float64)."""
    import numpy as np

    cols = [(n, "input", U[..., i]) for i, n in enumerate(names_in)]
    cols += [(n, "output", Y[..., i]) for i, n in enumerate(names_out)] if Y is not None else []
    for name, kind, x in cols:
        lo, hi = float(np.min(x)), float(np.max(x))
        if lo == hi and (kind == "output" or role == "data"):  # constant validation inputs are fine
            raise UserError(f"{role}: column {name!r} ({kind}) of {str(path)!r} is constant ({lo:g}): "
                            + ("it carries no information; leave it out" if kind == "input" else
                               "there is nothing to fit and the normalised error is undefined"))
        big, spread = max(abs(lo), abs(hi)), hi - lo
        if big > 1e150 or 0 < spread < 1e-150:
            what = f"has values up to {big:.3g}" if big > 1e150 else f"varies by only {spread:.3g}"
            raise UserError(f"{role}: column {name!r} ({kind}) of {str(path)!r} {what}; rescale it (change its "
                            f"unit) to values between about 1e-150 and 1e150, where float64 arithmetic works")


# ---------------------------------------------------------------------- demo
def _cmd_demo(args) -> int:
    """``rrnn demo``: generate the MSD data, fit a Theta_gamma model, report NSE and the verified certificate."""
    from .datasets import make_datasets
    from .fit import RobustRNNRegressor

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {str(out)!r} exists and is not a directory")
    check_writable(out / "model.npz", "--out")
    plot_ok = not args.no_plot and _plots_available()
    n_train = args.train_sequences or (10 if args.quick else 40)
    max_iter = args.max_iter or (5 if args.quick else 20)
    length = 2000 if args.quick else 5000
    t0 = time.perf_counter()
    print("rrnn demo: identify the paper's four-cart mass-spring-damper system (Revay, Wang & Manchester)")
    print(f"with a robust RNN certified to be contracting with incremental l2 gain <= gamma = {args.gamma:g}\n")
    splits = make_datasets(seed=args.seed, n_train=n_train, test_length=length)
    print(f"data            : {n_train} training sequences x {splits.train.T} samples (random initial states), "
          f"validation and tests {length} samples (zero initial state), Ts = {splits.train.ts:g} s")
    est = RobustRNNRegressor(args.states, args.states, model_set="theta_gamma", gamma=args.gamma,
                             max_iter=max_iter, time_budget=args.time_budget, seed=args.seed,
                             progress=not args.no_progress, patience=10)
    print(f"fitting         : n = q = {args.states} ReLU neurons, at most {max_iter} iterations / "
          f"{args.time_budget:g} s (every accepted iterate is certified) ...", flush=True)
    est.fit(splits.train.u, splits.train.y, validation=(splits.val.u, splits.val.y))
    print(f"                  {est.n_iter_} iterations, {sum(h['accepted'] for h in est.history_)} accepted, "
          f"{time.perf_counter() - t0:.1f} s; stopped: {est.stop_reason_}\n")
    _print_demo_scores(est.model_, splits, args.seed)
    ok, model_path, written = _write_demo_model(args, out, est)
    if plot_ok:
        written += _demo_plots(args, out, est, splits)
    print("\nwritten         : " + ", ".join(str(p) for p in written))
    print(f"re-check        : rrnn verify {model_path} {_cert_path(model_path)}")
    print(f"total time      : {time.perf_counter() - t0:.1f} s")
    return EXIT_OK if ok else EXIT_NOT_CERTIFIED


def _plots_available() -> bool:
    """Whether matplotlib can be used; prints a note when it cannot."""
    try:
        from .plots import require_matplotlib
        require_matplotlib()
    except ImportError as exc:
        print(f"note: {exc}; continuing without plots")
        return False
    return True


def _print_demo_scores(model, splits, seed: int) -> None:
    """The demo model's validation and test NSE and a measured lower bound of its gain."""
    import numpy as np

    from .analysis import lipschitz_lower_bound
    from .metrics import nse

    v = float(np.mean(nse(model.simulate(splits.val.u), splits.val.y)))
    tests = {w: float(np.mean(nse(model.simulate(d.u), d.y))) for w, d in splits.tests.items()}
    print(f"validation NSE  : {v:.4f}   (||y_hat - y|| / ||y - mean y||, zero initial state)")
    print("test NSE        : " + ", ".join(f"width {w:g}: {e:.4f}" for w, e in tests.items()))
    lb = lipschitz_lower_bound(model, horizon=500, starts=3, steps=100, seed=seed).value
    print(f"measured gain   : {lb:.3f} (Lipschitz lower bound by gradient ascent; must be <= gamma)\n")


def _write_demo_model(args, out: Path, est) -> tuple[bool, Path, list[Path]]:
    """Write the demo's model, certificate and history; (certificate verified, model path, files)."""
    model, cert = est.model_, est.certificate_
    model_path = model.save(out / "model.npz")
    written = [model_path]
    if cert is not None:
        ok = _print_certificate(cert, model)
        cert.to_json(_cert_path(model_path))
        written.append(_cert_path(model_path))
    else:  # cannot happen for Theta_gamma (the final model is certified); never pretend otherwise
        ok = False
        print("certificate     : none (the fitted model is not certified)")
    _write_history(model_path.with_suffix(".history.json"), est, {"command": "demo", "seed": args.seed,
                                                                 "gamma": args.gamma, "states": args.states})
    written.append(model_path.with_suffix(".history.json"))
    return ok, model_path, written


def _demo_plots(args, out: Path, est, splits) -> list[Path]:
    """The demo's fit on a test set (first 400 samples) and its history; returns the files."""
    from .plots import plot_fit, plot_history

    test = splits.tests[3.0] if 3.0 in splits.tests else next(iter(splits.tests.values()))
    k = min(400, test.T)
    plot_fit(test.y[0, :k], est.model_.simulate(test.u)[0, :k], ts=test.ts, output_names=["last cart position"],
             title=f"Mass-spring-damper, test input width {test.meta['width']:g} (first {k} samples); "
                   f"model certified: gain <= {args.gamma:g}", path=out / "fit.png")
    plot_history(est.history_, path=out / "history.png")
    return [out / "fit.png", out / "history.png"]


def _write_history(path: Path, est, settings: dict, data: dict | None = None) -> None:
    """Write a fit's per-iteration history with its settings as JSON (NaN -> null), atomically."""
    from ._io import json_safe, write_text_atomic
    from . import __version__
    doc = {"schema": "rrnn_convex.fit_history", "schema_version": 1, "package_version": __version__,
           "settings": settings, "data": data or {}, "n_iter": est.n_iter_,
           "stop_reason": est.stop_reason_, "stop_detail": est.stop_detail_, "start": est.start_,
           "scaling": est.scaling_.to_dict(), "windows": {"count": est.windows_.count, "length": est.windows_.length},
           "history": est.history_}
    write_text_atomic(path, json.dumps(json_safe(doc), indent=1))


# ---------------------------------------------------------------------- certify / verify / project
def _cmd_certify(args) -> int:
    """``rrnn certify``: certify a model file and write the JSON certificate (exit 0 certified, 1 not)."""
    from .certify import DEFAULT_TIME_LIMIT, certify

    out = Path(args.out) if args.out else _cert_path(Path(args.model))
    check_outputs({"model": args.model}, {"--out": out})
    loaded = _load_model(args)
    print(f"input           : {loaded.description}")
    cert = certify(loaded.model, gamma=args.gamma, solver=args.solver,
                   time_limit=args.time_limit or DEFAULT_TIME_LIMIT)
    cert.to_json(out)
    ok = _print_certificate(cert, loaded.model)
    print(f"certificate     : written to {out}")
    return EXIT_OK if ok else EXIT_NOT_CERTIFIED


def _cmd_export(args) -> int:
    """``rrnn export``: write the model as a PyTorch file that ``rrnn certify`` reads back exactly."""
    from .io_models import save_torch

    target = args.to.lower()
    if target == "onnx":
        raise UserError("--to onnx: not available: torch.onnx.export needs the onnx and onnxscript packages, "
                        "which rrnn_convex does not depend on; export with --to torch")
    if target != "torch":
        raise UserError(f"--to: expected 'torch', got {args.to!r}")
    out = Path(args.out)
    if out.suffix.lower() not in (".pt", ".pth"):
        raise UserError(f"OUT: expected a .pt or .pth file name (what rrnn certify reads as PyTorch), got {args.out!r}")
    if out.is_dir():
        raise UserError(f"OUT: {args.out!r} is a directory")
    check_outputs({"model": args.model}, {"OUT": out})
    loaded = _load_model(args)
    print(f"input           : {loaded.description}")
    model = loaded.model
    save_torch(model, out, meta=loaded.meta)
    print(f"model           : n={model.n} states, q={model.q} neurons ({model.activation.name}), m={model.m}, "
          f"p={model.p}, D11 {model.d11_kind}")
    print(f"model hash      : {model.weights_hash()[:16]}... (the same when rrnn certify / verify read {out.name})")
    print(f"written         : {out} (in Python: rrnn_convex.io_models.load_any_model(path).to_torch())")
    return EXIT_OK


def _cmd_verify(args) -> int:
    """``rrnn verify``: rigorous re-check of a certificate against a model file, no solver (0 ok, 1 not)."""
    from .certify import CERT_SCHEMA, CERT_SCHEMA_VERSION, Certificate

    loaded = _load_model(args)
    path = check_input_file(args.certificate, "certificate")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"certificate: {str(path)!r} is not a text (JSON) file") from None
    try:
        doc = strict_json(text)
    except ValueError as exc:  # JSONDecodeError is one
        raise UserError(f"certificate: {str(path)!r} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != CERT_SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"certificate: {str(path)!r} is not an rrnn_convex certificate "
                        f"(expected schema {CERT_SCHEMA!r}, got {got!r})")
    version = doc.get("schema_version")
    if type(version) is not int or not 1 <= version <= CERT_SCHEMA_VERSION:
        raise UserError(f"certificate: schema_version {version!r} is not one this package reads (an integer "
                        f"1..{CERT_SCHEMA_VERSION})")
    # from here on the file claims to be a certificate: anything wrong with it means "not verified"
    try:
        cert = Certificate.from_dict(doc)
        check = cert.verify(loaded.model)
    except (TypeError, ValueError) as exc:
        print(f"rrnn verify: NOT VERIFIED: malformed certificate: {_one_line(exc)}", file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    if not check.ok:
        print(f"rrnn verify: NOT VERIFIED: {check.reason}", file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    claim = f"incremental l2 gain <= {cert.gamma:.8g} and contraction" if cert.gamma is not None else "contraction"
    print(f"VERIFIED: {claim} ({check.reason}; proven LMI margin {check.proven_margin:.3e})")
    print(f"model           : {loaded.description}, hash {cert.model_hash[:16]}...")
    print(f"method          : {check.method}")
    return EXIT_OK


def _cmd_project(args) -> int:
    """``rrnn project``: write the nearest certified model and its certificate."""
    from .certify import DEFAULT_TIME_LIMIT
    from .project import project

    out = _npz_out(args.out)
    check_outputs({"model": args.model}, {"--out": out, "the certificate beside --out": _cert_path(out)})
    loaded = _load_model(args)
    print(f"input           : {loaded.description}")
    target = f"Theta_gamma (gamma = {args.gamma:g})" if args.gamma is not None else "Theta (contracting)"
    try:
        res = project(loaded.model, gamma=args.gamma, solver=args.solver, norm=args.norm,
                      time_limit=args.time_limit or DEFAULT_TIME_LIMIT)
    except NotCertifiable as exc:
        print(f"rrnn project: not certified: {exc}", file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    print(f"projection      : onto {target}; "
          + (f"moved by {res.distance:.6g} ({res.norm} Frobenius distance)" if res.moved
             else "the model is already in the set (unchanged)"))
    ok = _print_certificate(res.certificate, res.model)
    path = res.model.save(out)
    res.certificate.to_json(_cert_path(path))
    print(f"written         : {path}, {_cert_path(path)}")
    return EXIT_OK if ok else EXIT_NOT_CERTIFIED


# ---------------------------------------------------------------------- fit / simulate
def _training_data(args):
    """(U, Y, sequence labels, input names, output names, validation (U, Y) or None) of
    ``rrnn fit`` / ``rrnn sweep``."""
    inputs, outputs = _columns(args.inputs, "--inputs"), _columns(args.outputs, "--outputs")
    U, Y, labels, names_in, names_out = _read_sequences(args.data, inputs, outputs, args.sequence_column)
    _check_fit_data(args.data, U, Y, names_in, names_out)
    val = None
    if args.validation:
        Uv, Yv, _, _, _ = _read_sequences(args.validation, inputs, outputs, args.sequence_column, "--validation")
        _check_fit_data(args.validation, Uv, Yv, names_in, names_out, "--validation")
        val = (Uv, Yv)
    return U, Y, labels, names_in, names_out, val


def _cmd_fit(args) -> int:
    """``rrnn fit``: fit to CSV data; write model, certificate, history (and plots) atomically."""
    out, plot = _fit_outputs(args)
    U, Y, labels, names_in, names_out, val = _training_data(args)
    _check_resume(args.resume)
    k = args.init_samples or 0
    if val is not None and k >= val[0].shape[1]:
        raise UserError(f"--init-samples: expected fewer than the {val[0].shape[1]} samples of each validation "
                        f"sequence, got {k}")
    model_set = args.model_set or ("theta_gamma" if args.gamma is not None else "theta")
    _print_fit_data(args, U, labels, names_in, names_out, val, k)
    est = _fit_estimator(args, model_set, k)
    t0 = time.perf_counter()
    est.fit(U, Y, validation=val, resume=args.resume)
    _print_fit_summary(est, time.perf_counter() - t0, model_set, U.shape[1])
    scores = _fit_scores(est, U, Y, val, k)
    meta = {"inputs": [str(n) for n in names_in], "outputs": [str(n) for n in names_out]}
    if args.ts is not None:
        meta["ts"] = args.ts
    path = est.save(out, meta=meta)
    written = [path]
    ok = False
    if est.certificate_ is not None:
        ok = _print_certificate(est.certificate_, est.model_)
        written.append(_cert_path(path))
    else:
        print("certificate     : none (the fitted model is not certified)")
    settings = {"states": args.states, "neurons": args.neurons, "model_set": model_set, "gamma": args.gamma,
                "activation": args.activation, "normalize": not args.no_normalize, "window": args.window,
                "window_stride": args.window_stride, "init_samples": k, "max_iter": args.max_iter,
                "time_budget": args.time_budget, "seed": args.seed, "solver": args.solver, "resumed_from": args.resume}
    data = {"train": str(args.data), "validation": args.validation, "inputs": names_in, "outputs": names_out,
            "sequences": int(U.shape[0]), "samples": int(U.shape[1])} | scores
    hist = path.with_suffix(".history.json")
    _write_history(hist, est, settings, data)
    written.append(hist)
    if plot is not None:
        written += _fit_plots(args, plot, est, U, Y, val, k, names_out)
    print("written         : " + ", ".join(str(p) for p in written))
    return EXIT_OK if ok else EXIT_NOT_CERTIFIED


def _fit_outputs(args) -> tuple[Path, Path | None]:
    """(model path, plot path or None) of ``rrnn fit``, after checking that no output overwrites an
    input or another output."""
    out = _npz_out(args.out)
    plot = _png_path(args.plot)
    check_outputs({"data": args.data, "validation data (--validation)": args.validation,
                   "checkpoint to resume (--resume)": args.resume},
                  {"--out": out, "the certificate beside --out": _cert_path(out),
                   "the history beside --out": out.with_suffix(".history.json"), "--plot": plot,
                   "the history plot beside --plot": _history_plot(plot), "--checkpoint": args.checkpoint},
                  may_equal=(("--checkpoint", "checkpoint to resume (--resume)"),))
    return out, plot


def _check_resume(resume) -> None:
    """Refuse a ``--resume`` path that is a directory or does not exist."""
    if resume and Path(resume).is_dir():
        raise UserError(f"--resume: {resume!r} is a directory, not a checkpoint file")
    if resume and not Path(resume).is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {resume!r}")


def _print_fit_data(args, U, labels, names_in, names_out, val, k: int) -> None:
    """What ``rrnn fit`` trains and validates on."""
    print(f"data            : {args.data}: {U.shape[0]} sequence(s) x {U.shape[1]} samples"
          + (f" (split by column {args.sequence_column or 'sequence'!r})" if labels else "")
          + f", inputs {names_in}, outputs {names_out}")
    if val is not None:
        start = (f"initial state estimated from its first {k} samples, which are not scored" if k
                 else "zero initial state; --init-samples K estimates it from the first K samples")
        print(f"validation      : {args.validation}: {val[0].shape[0]} sequence(s) x {val[0].shape[1]} samples "
              f"({start})")


def _fit_estimator(args, model_set: str, k: int):
    """The estimator ``rrnn fit`` runs, from its options."""
    from .fit import RobustRNNRegressor

    return RobustRNNRegressor(args.states, args.neurons, model_set=model_set, gamma=args.gamma,
                              activation=args.activation, normalize=not args.no_normalize, window=args.window,
                              window_stride=args.window_stride, init_samples=k, max_iter=args.max_iter,
                              time_budget=args.time_budget, seed=args.seed, solver=args.solver,
                              checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                              progress=not args.no_progress, equilibrium=args.equilibrium)


def _validation_prediction(model, val, k: int):
    """The model on the validation inputs: from the state estimated over the first ``k`` samples,
    or from zero (``k`` 0)."""
    return model.simulate(val[0], y_init=val[1], init_samples=k) if k else model.simulate(val[0])


def _fit_scores(est, U, Y, val, k: int) -> dict:
    """Print and return the fitted model's training NSE (learned initial states) and validation NSE."""
    import numpy as np

    from .metrics import nse

    W = est.windows_
    tr = float(np.mean(nse(est.model_.simulate(W.take(U), est.x0_), W.take(Y))))
    print(f"training NSE    : {tr:.4f} (learned initial states)")
    vn = None
    if val is not None:
        vn = float(np.mean(nse(_validation_prediction(est.model_, val, k), val[1], init=k)))
        print(f"validation NSE  : {vn:.4f} ({'estimated' if k else 'zero'} initial state)")
    return {"train_nse": tr, "validation_nse": vn}


def _fit_plots(args, plot: Path, est, U, Y, val, k: int, names_out) -> list[Path]:
    """Plot the fit (validation data, else the training windows) and the history; returns the files."""
    from .plots import plot_fit, plot_history

    if val is not None:
        Yf, what, yhat = val[1], "validation", _validation_prediction(est.model_, val, k)
    else:
        W = est.windows_
        Yf, what, yhat = W.take(Y), "training", est.model_.simulate(W.take(U), est.x0_)
    plot_fit(Yf, yhat, ts=args.ts, output_names=[str(n) for n in names_out],
             title=f"{what} data (sequence 0) vs fitted model", path=plot)
    hplot = _history_plot(plot)
    plot_history(est.history_, path=hplot)
    return [plot, hplot]


def _history_plot(plot: Path | None) -> Path | None:
    """``fit.png`` -> ``fit-history.png`` (the history plot of ``rrnn fit --plot``)."""
    return None if plot is None else plot.with_name(plot.stem + "-history.png")


def _print_fit_summary(est, seconds: float, model_set: str, T: int) -> None:
    """How a fit started, how long it ran and why it stopped (``rrnn fit`` / ``rrnn benchmark``)."""
    start = est.start_
    if "order" in start and "train_rmse_by_order" in start:
        print(f"start           : N4SID order {start['order']} of {len(start['train_rmse_by_order'])} tried "
              f"(smallest training simulation error), padded to n = {start['n_states']}")
    W = est.windows_
    if not W.whole(T):
        print(f"windows         : {W.count} training windows of {W.length} samples, each with a learned initial state")
    print(f"fit             : {est.n_iter_} iterations ({sum(h['accepted'] for h in est.history_)} accepted), "
          f"{seconds:.1f} s, set {model_set}")
    print(f"stopped         : {est.stop_reason_}" + (f" ({est.stop_detail_})" if est.stop_detail_ else ""))


def _cmd_simulate(args) -> int:
    """``rrnn simulate``: simulate a model on CSV inputs from the zero or an estimated initial state; write
    the predictions as CSV and, with measured outputs, print NSE and RMSE (from sample --init-samples on)."""
    if Path(args.out).suffix.lower() != ".csv":
        raise UserError(f"--out: expected a .csv file name, got {args.out!r}")
    plot = _png_path(args.plot)
    check_outputs({"model": args.model, "data": args.data}, {"--out": args.out, "--plot": plot})
    loaded = _load_model(args)
    model = loaded.model
    table = _read_table(args.data)
    present = {h.lower() for h in table.first_row or []}
    inputs, source_in = _simulate_inputs(args, model, loaded.meta, present)
    outputs, source_out, why_none = _simulate_outputs(args, model, loaded.meta, present)
    if plot is not None and outputs is None:
        raise UserError("--plot: needs --outputs (the measured outputs to compare with)")
    k = args.init_samples
    if k is not None and outputs is None:
        raise UserError(f"--init-samples: needs the measured outputs to estimate the initial state from{why_none}")
    U, Y, labels, _, names_out = _read_sequences(args.data, inputs, outputs, args.sequence_column, table=table)
    T = U.shape[1]
    if k is not None and k >= T:
        raise UserError(f"--init-samples: expected fewer than the {T} samples of each sequence (the samples "
                        f"after them are scored), got {k}")
    yhat = model.simulate(U) if k is None else model.simulate(U, y_init=Y, init_samples=k)
    cols = [f"{n}_hat" for n in names_out] if outputs and all(isinstance(n, str) for n in names_out) \
        else [f"y_hat_{i}" for i in range(model.p)]
    _write_predictions(args.out, yhat, labels, cols)
    print(f"columns         : inputs {inputs} (from {source_in})"
          + (f", outputs {outputs} (from {source_out})" if outputs is not None else ", no measured outputs"))
    start = "zero initial state" if k is None else \
        f"initial state estimated from the first {k} measured outputs (least squares)"
    print(f"simulated       : {loaded.description} on {U.shape[0]} sequence(s) x {T} samples from {start}")
    if Y is not None:
        _print_scores(yhat, Y, k, names_out)
        if plot is not None:
            from .plots import plot_fit
            plot_fit(Y, yhat, ts=args.ts, output_names=[str(n) for n in names_out],
                     title="measured vs simulated (sequence 0)", path=plot)
    print(f"written         : {args.out}" + (f", {plot}" if plot is not None else ""))
    return EXIT_OK


def _recorded_columns(meta: dict, key: str, count: int, present: set) -> tuple:
    """``meta[key]`` when it is a list of ``count`` column names: (names, those missing from the
    data's lower-cased header ``present``); else (None, None)."""
    names = meta.get(key)
    if not (isinstance(names, list) and len(names) == count and all(isinstance(c, str) for c in names)):
        return None, None
    return names, [c for c in names if c.lower() not in present]


def _simulate_inputs(args, model, meta: dict, present: set) -> tuple[list, str]:
    """(input columns, where they came from) of ``rrnn simulate``: --inputs, else the model file's."""
    if args.inputs is not None:
        inputs, source = _columns(args.inputs, "--inputs"), "--inputs"
    else:
        inputs, missing = _recorded_columns(meta, "inputs", model.m, present)
        if inputs is None:
            got = f"records {meta['inputs']!r}, not m={model.m} column names" if "inputs" in meta \
                else "records no input column names"
            raise UserError(f"--inputs: not given and the model file {got}; pass --inputs COLUMNS")
        if missing:
            raise UserError(f"--inputs: not given, and the input columns recorded in the model file ({inputs}) are "
                            f"not all in {Path(args.data).name} (missing {missing}); pass --inputs COLUMNS")
        source = "the model file"
    if len(inputs) != model.m:
        raise UserError(f"--inputs: the model has m={model.m} input(s), got {len(inputs)} column(s)")
    return inputs, source


def _simulate_outputs(args, model, meta: dict, present: set) -> tuple[list | None, str, str]:
    """(measured output columns or None, where they came from, why there are none) of ``rrnn
    simulate``: --outputs, else the model file's when the data has them all."""
    why_none = "; pass --outputs"
    if args.outputs is not None:
        outputs = _columns(args.outputs, "--outputs")
        if len(outputs) != model.p:
            raise UserError(f"--outputs: the model has p={model.p} output(s), got {len(outputs)} column(s)")
        return outputs, "--outputs", why_none
    outputs, missing = _recorded_columns(meta, "outputs", model.p, present)
    if outputs is not None and missing:
        why_none = (f" (the model file's output columns {outputs} are not all in {Path(args.data).name}: "
                    f"missing {missing}); pass --outputs")
        outputs = None
    return outputs, "the model file", why_none


def _write_predictions(path, yhat, labels: list | None, cols: list) -> None:
    """Write predictions (batch, T, p) as CSV, atomically: a sequence column when ``labels``."""
    from ._io import write_text_atomic

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow((["sequence"] if labels else []) + cols)
    for b in range(yhat.shape[0]):
        for t in range(yhat.shape[1]):
            w.writerow(([labels[b]] if labels else []) + [repr(float(v)) for v in yhat[b, t]])
    write_text_atomic(path, buf.getvalue())


def _print_scores(yhat, Y, k: int | None, names_out: list) -> None:
    """Print NSE and RMSE per output, averaged over the sequences, from sample ``k`` (0) on."""
    import numpy as np

    from .metrics import nse, rmse

    init, T = k or 0, Y.shape[1]
    scored = f"samples {init}..{T - 1}" + (f", the first {k} not scored" if k else "")
    average = f"({scored}; mean over {Y.shape[0]} sequence(s))"
    for label, metric in (("NSE", nse), ("RMSE", rmse)):
        e = np.asarray(metric(yhat, Y, init=init))  # (batch, p)
        print(f"{label:<16}: {average} "
              + ", ".join(f"{n}: {float(np.mean(e[:, i])):.6g}" for i, n in enumerate(names_out)))


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The ``rrnn`` argument parser (subcommands demo, certify, verify, project, fit, simulate, sweep,
    experiment, benchmark, export; each added by its ``_add_*`` function).

    Returns
    -------
    argparse.ArgumentParser
        A new parser whose description is this module's docstring from "Model files:" on (after
        its first line); each subcommand's parser sets ``func``, the function that runs it.
        Parse errors exit with code 2 and a one-line message.
    """
    head, _, rest = __doc__.partition("Model files:")
    text = head.splitlines()[0] + "\n\nModel files:" + rest
    text = text.replace("``", "").replace(":mod:`rrnn_convex.io_models`", "rrnn_convex.io_models").rstrip()
    parser = _Parser(prog="rrnn", description=text, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an unexpected error (exit code 3) instead of one line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for add in (_add_demo, _add_certify_verify_project, _add_fit, _add_simulate, _add_sweep,
                _add_experiment_and_benchmark, _add_export):
        add(sub)
    return parser


def _model_arg(p) -> None:
    """The model file argument (and --nonlinearity) of the commands that read one."""
    p.add_argument("model", help="model file: .npz (ImplicitRNN.save, Elman arrays or REN weights), .json "
                                 "(Elman arrays), .pt (torch state_dict or rrnn export)")
    p.add_argument("--nonlinearity", choices=("tanh", "relu"), default=None,
                   help="activation of a torch nn.RNN state_dict that does not record it")


def _add_demo(sub) -> None:
    """The ``rrnn demo`` subcommand."""
    demo = sub.add_parser("demo", help="fit and certify a model of the paper's mass-spring-damper system",
                          description="Generate the mass-spring-damper data (rrnn_convex.datasets.msd), fit a "
                                      "small model certified to have incremental l2 gain <= gamma, print "
                                      "validation / test NSE and the verified certificate, save model, "
                                      "certificate, history and plots. About 1 minute on 2 cores.")
    demo.add_argument("--states", type=_positive_int, default=6, help="states = neurons n = q (default 6)")
    demo.add_argument("--gamma", type=_positive_float, default=15.0,
                      help="certified gain bound (default 15; the system's small-signal gain is about 11.5)")
    demo.add_argument("--seed", type=int, default=0, help="data and initialisation seed (default 0)")
    demo.add_argument("--max-iter", type=_positive_int, default=None, help="iterations (default 20, --quick 5)")
    demo.add_argument("--time-budget", type=_positive_float, default=90.0, help="fit time budget, s (default 90)")
    demo.add_argument("--train-sequences", type=_positive_int, default=None,
                      help="training sequences of 1000 samples (default 40, --quick 10)")
    demo.add_argument("--quick", action="store_true", help="less data and 5 iterations (~10 s)")
    demo.add_argument("--out", default="rrnn_demo", help="output directory (default ./rrnn_demo)")
    demo.add_argument("--no-plot", action="store_true", help="do not write fit.png / history.png")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=_cmd_demo)


def _add_certify_verify_project(sub) -> None:
    """The ``rrnn certify``, ``verify`` and ``project`` subcommands."""
    cert = sub.add_parser("certify", help="certify a model file (contraction, smallest or given gamma)")
    _model_arg(cert)
    cert.add_argument("--gamma", type=_positive_float, default=None,
                      help="decide whether this gain bound is certified (default: find the smallest)")
    cert.add_argument("--solver", default=None, help="CLARABEL (default), SCS or MOSEK")
    cert.add_argument("--out", help="JSON certificate path (default: MODEL.cert.json beside the model)")
    cert.add_argument("--time-limit", type=_positive_float, default=None, metavar="SECONDS",
                      help="overall time budget in seconds (default 600); when it is spent the "
                           "answer is 'not certified: time limit' (exit 1)")
    cert.set_defaults(func=_cmd_certify)

    ver = sub.add_parser("verify", help="rigorously re-check a JSON certificate against a model (no solver)")
    _model_arg(ver)
    ver.add_argument("certificate", help="JSON certificate (rrnn certify / Certificate.to_json)")
    ver.set_defaults(func=_cmd_verify)

    proj = sub.add_parser("project", help="the nearest certified model (Theta, or Theta_gamma with --gamma)")
    _model_arg(proj)
    proj.add_argument("--gamma", type=_positive_float, default=None, help="gain bound (default: contraction only)")
    proj.add_argument("--norm", choices=("normalized", "implicit"), default="normalized",
                      help="distance on the explicit form (default) or on the weights as given")
    proj.add_argument("--solver", default=None, help="CLARABEL (default), SCS or MOSEK")
    proj.add_argument("--out", required=True, help="projected model (.npz); its certificate goes to OUT.cert.json")
    proj.add_argument("--time-limit", type=_positive_float, default=None, metavar="SECONDS",
                      help="overall time budget in seconds (default 600); when it is spent the "
                           "answer is 'not certified: time limit' (exit 1)")
    proj.set_defaults(func=_cmd_project)


def _add_export(sub) -> None:
    """The ``rrnn export`` subcommand."""
    exp = sub.add_parser("export", help="write a model as a PyTorch file (--to torch OUT.pt)",
                         description="Write the model's float64 weights to a PyTorch file (torch.save of a "
                                     "dict of tensors, readable with torch.load(weights_only=True)) that rrnn "
                                     "certify / verify / simulate read back to the identical model: same "
                                     "weights hash, so its certificates verify. Written atomically; never "
                                     "over the input. Needs the torch extra.")
    _model_arg(exp)
    exp.add_argument("--to", required=True, metavar="FORMAT", help="the format: torch (ONNX is not available)")
    exp.add_argument("out", metavar="OUT", help="the file to write (.pt or .pth)")
    exp.set_defaults(func=_cmd_export)


def _add_fit(sub) -> None:
    """The ``rrnn fit`` subcommand."""
    fit = sub.add_parser("fit", help="fit a certified model to CSV data",
                         description="Fit by sequential convex programming; every accepted iterate is "
                                     "certified. One CSV is one sequence, unless a 'sequence' column (or "
                                     "--sequence-column) splits it into equal-length sequences. Writes MODEL.npz, "
                                     "MODEL.cert.json and MODEL.history.json atomically.")
    fit.add_argument("data", help="training data (.csv with a header row)")
    fit.add_argument("--inputs", required=True, help="input columns: names or 0-based indices, comma-separated")
    fit.add_argument("--outputs", required=True, help="output columns: names or 0-based indices, comma-separated")
    fit.add_argument("--validation", help="validation data (.csv, same columns; zero initial state)")
    fit.add_argument("--sequence-column", default=None, help="column naming the sequence of each row "
                                                              "(default: 'sequence' if present)")
    fit.add_argument("--states", type=_positive_int, required=True, help="number of states n")
    fit.add_argument("--neurons", type=_positive_int, required=True, help="number of neurons q")
    fit.add_argument("--gamma", type=_positive_float, default=None, help="certified gain bound (set Theta_gamma)")
    fit.add_argument("--model-set", choices=ModelSet.names(), default=None,
                     help="default: theta_gamma with --gamma, else theta")
    fit.add_argument("--activation", default="relu", help="relu (default), tanh, sigmoid, leaky_relu")
    fit.add_argument("--equilibrium", action="store_true",
                     help="also train an equilibrium weight D11 (w = sigma(C1 x + D11 w + ...); Theta or "
                          "Theta_gamma; each iteration costs several times more)")
    fit.add_argument("--max-iter", type=_positive_int, default=None,
                     help="iteration cap (default: none with --time-budget, else 50)")
    fit.add_argument("--time-budget", type=_positive_float, default=None,
                     help="wall-time budget in seconds, checked inside iterations too")
    fit.add_argument("--no-normalize", action="store_true",
                     help="fit on the raw data (default: each channel normalised to mean 0, std 1 on the training "
                          "data; the model and its certificate are in physical units either way)")
    fit.add_argument("--window", type=_window, default="auto",
                     help="train on windows of this many samples, each with a learned initial state: 'auto' "
                          "(default: whole sequences up to 5000 samples, else 2048), 'none', or a number")
    fit.add_argument("--window-stride", type=_positive_int, default=None,
                     help="samples between window starts (default: half a window)")
    fit.add_argument("--init-samples", type=_nonnegative_int, default=0, metavar="K",
                     help="estimate each validation sequence's initial state from its first K samples and score "
                          "the rest (default 0: zero initial state, all samples)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--solver", default=None, help="CLARABEL (default), SCS or MOSEK")
    fit.add_argument("--checkpoint", default=None, help="write a checkpoint (.npz) every --checkpoint-every "
                                                         "iterations, at the end and on Ctrl-C")
    fit.add_argument("--checkpoint-every", type=_positive_int, default=5, help="iterations between checkpoints (5)")
    fit.add_argument("--resume", default=None, help="continue from this checkpoint (same data and settings)")
    fit.add_argument("--ts", type=_positive_float, default=None, help="sampling period in s (plot axis only)")
    fit.add_argument("--plot", default=None, help="PNG of the fit; the history goes to PLOT-history.png")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    fit.add_argument("--out", required=True, help="model file (.npz)")
    fit.set_defaults(func=_cmd_fit)


def _add_simulate(sub) -> None:
    """The ``rrnn simulate`` subcommand."""
    simu = sub.add_parser("simulate", help="simulate a model on the inputs of a CSV file (zero or estimated "
                                           "initial state)",
                          description="Simulate the model on the inputs of a CSV file and write the predictions. "
                                      "Column names default to those recorded in the model file "
                                      "(ImplicitRNN.save(..., meta={'inputs': [...], 'outputs': [...]})). With "
                                      "measured outputs, NSE and RMSE are printed; with --init-samples K the "
                                      "initial state is estimated from the first K measured outputs (the "
                                      "benchmark convention) and the metrics cover samples K.. only.")
    _model_arg(simu)
    simu.add_argument("data", help="data (.csv)")
    simu.add_argument("--inputs", default=None, help="input columns: names or 0-based indices, comma-separated "
                                                     "(default: the input names recorded in the model file)")
    simu.add_argument("--outputs", default=None, help="measured output columns, for NSE / RMSE (default: the "
                                                      "output names recorded in the model file, if in the data)")
    simu.add_argument("--init-samples", type=_positive_int, default=None, metavar="K",
                      help="estimate the initial state from the first K measured outputs (needs outputs; K < "
                           "record length) and score samples K.. only (default: zero initial state, all samples)")
    simu.add_argument("--sequence-column", default=None, help="column naming the sequence of each row "
                                                               "(default: 'sequence' if present)")
    simu.add_argument("--ts", type=_positive_float, default=None, help="sampling period in s (plot axis only)")
    simu.add_argument("--plot", default=None, help="PNG of measured vs simulated (needs measured outputs)")
    simu.add_argument("--out", required=True, help="predictions (.csv)")
    simu.set_defaults(func=_cmd_simulate)


def _add_sweep(sub) -> None:
    """The ``rrnn sweep`` subcommand."""
    sw = sub.add_parser("sweep", help="fit a grid of model sets x gammas x seeds in parallel",
                        description="Fit every cell of the grid in parallel processes (joblib) or on a Dask "
                                    "cluster (--scheduler); a failed cell is reported, not fatal. Writes one table.")
    sw.add_argument("data", help="training data (.csv with a header row)")
    sw.add_argument("--inputs", required=True, help="input columns: names or 0-based indices, comma-separated")
    sw.add_argument("--outputs", required=True, help="output columns: names or 0-based indices, comma-separated")
    sw.add_argument("--validation", help="validation data (.csv, same columns; zero initial state)")
    sw.add_argument("--sequence-column", default=None, help="column naming the sequence of each row")
    sw.add_argument("--states", type=_positive_int, required=True, help="number of states n")
    sw.add_argument("--neurons", type=_positive_int, required=True, help="number of neurons q")
    sw.add_argument("--gammas", type=_positive_float, nargs="+", default=(), help="gammas for theta_gamma")
    sw.add_argument("--seeds", type=int, nargs="+", default=(0,))
    sw.add_argument("--model-sets", nargs="+", default=None,
                    help=f"some of {', '.join(ModelSet.names())} (default: theta_gamma with --gammas, else theta)")
    sw.add_argument("--max-iter", type=_positive_int, default=50)
    sw.add_argument("--time-budget", type=_positive_float, default=None, help="per cell, seconds")
    sw.add_argument("--jobs", type=_positive_int, default=2, help="worker processes (default 2)")
    sw.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    sw.add_argument("--out", required=True, help="results table (.csv)")
    sw.set_defaults(func=_cmd_sweep)


def _add_experiment_and_benchmark(sub) -> None:
    """The ``rrnn experiment`` and ``rrnn benchmark`` subcommands."""
    exp = sub.add_parser("experiment", help="reproduce the paper's comparison (rrnn experiment msd [--quick])")
    exp.add_argument("name", choices=("msd",), help="msd: the mass-spring-damper comparison (Table I, Figs. 2-4)")
    exp.add_argument("--out", default="msd_results", help="output folder; rerunning with it resumes (default "
                                                           "msd_results)")
    exp.add_argument("--quick", action="store_true", help="smoke test: generated data, tiny budgets (~1 min)")
    exp.add_argument("--models", nargs="+", default=None, help="only these models (e.g. Theta Theta_8 LSTM)")
    exp.add_argument("--data", default=None, help="the authors' msd_dataset folder (default: $RRNN_DATA/msd_dataset "
                     "when present, else generated data; the source is printed)")
    exp.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    exp.set_defaults(func=_cmd_experiment)

    bench = sub.add_parser("benchmark", help="fit and score a measured system-identification benchmark",
                           description="Fit a certified contracting model to one nonlinearbenchmark.org benchmark "
                                       "with its fixed recipe (rrnn_convex.experiments.sysid.RECIPES), fit an N4SID "
                                       "linear model in the same run, and print the test RMSE of both (initial "
                                       "state estimated from each test record's first 'init' samples) next to "
                                       "published figures, with the certified contraction and gamma (physical "
                                       "units), a measured Lipschitz lower bound and the wall time. Writes "
                                       "model.npz, model.cert.json, result.json, result.md and prediction.png.")
    bench.add_argument("name", choices=("cascaded_tanks", "silverbox", "emps", "coupled_electric_drives"))
    bench.add_argument("--data", default=None, help="folder with the benchmark files (default: $RRNN_DATA/sysid, "
                                                    "else the nonlinear_benchmarks package's download cache)")
    bench.add_argument("--quick", action="store_true", help="smoke test: a small model and a 20 s budget")
    bench.add_argument("--out", default=None, help="output folder (default: benchmark_NAME)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    bench.set_defaults(func=_cmd_benchmark)


def _cmd_benchmark(args) -> int:
    """``rrnn benchmark``: one measured benchmark end to end; exit 1 if the model's certificate does not verify."""
    from .experiments import sysid

    out = Path(args.out or f"benchmark_{args.name}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {str(out)!r} exists and is not a directory")
    folder = args.data or sysid.default_data_folder()
    if folder is not None and same_file(out, folder):
        raise UserError(f"--out: {str(out)!r} is the same folder as the benchmark data {str(folder)!r}; the results "
                        f"would be written among the data files: choose another --out")
    check_writable(out / "model.npz", "--out")
    res = sysid.run(args.name, out, quick=args.quick, folder=args.data, seed=args.seed, progress=args.progress)
    if not res["verified"]:
        print("rrnn benchmark: the fitted model's certificate did not verify", file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    return EXIT_OK


def _cmd_sweep(args) -> int:
    """``rrnn sweep``: a parallel grid of fits; exit 1 if any cell failed or did not verify."""
    from .sweep import sweep

    check_outputs({"data": args.data, "validation data (--validation)": args.validation}, {"--out": args.out})
    U, Y, _, _, _, val = _training_data(args)
    sets = args.model_sets or (["theta_gamma"] if args.gammas else ["theta"])
    res = sweep(U, Y, val, gammas=args.gammas, seeds=args.seeds, model_sets=sets, n_states=args.states,
                n_neurons=args.neurons, n_jobs=args.jobs, scheduler=args.scheduler, max_iter=args.max_iter,
                time_budget=args.time_budget)
    res.to_csv(args.out)
    print(res.to_markdown())
    print(f"\n{len(res.rows)} cells in {res.seconds:.1f} s ({res.backend}); table written to {args.out}")
    for r in res.failed:
        print(f"rrnn sweep: cell {r['model_set']} gamma={r['gamma']} seed={r['seed']} failed: {r['error']}",
              file=sys.stderr)
    certified_sets = ModelSet.names_where(certifies=True)
    bad = res.failed or [r for r in res.rows if r["model_set"] in certified_sets and not r["verified"]]
    return EXIT_NOT_CERTIFIED if bad else EXIT_OK


def _cmd_experiment(args) -> int:
    from .experiments import msd

    res = msd.run(args.out, quick=args.quick, models=args.models, progress=args.progress, folder=args.data)
    print()
    print((Path(args.out) / "results.md").read_text())
    certified_sets = ModelSet.names_where(certifies=True)  # LSTM rows have no model set
    bad = [r["model"] for r in res.rows if r["model_set"] in certified_sets and not r["verified"]]
    if bad:
        print(f"rrnn experiment: certificates that did not verify: {bad}", file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    return 0


def _one_line(exc: BaseException) -> str:
    """An exception as one line of text (whitespace collapsed)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename!r}"
    return text


def main(argv=None) -> int:
    """Run the ``rrnn`` command; returns the exit code (0 ok, 1 not certified, 2 bad input, 3 internal error).

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``rrnn`` (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: ``EXIT_OK`` (0), ``EXIT_NOT_CERTIFIED`` (1, also for
        :class:`~rrnn_convex.errors.NotCertifiable`), ``EXIT_BAD_INPUT`` (2: ValueError,
        OSError, a missing or unsupported optional dependency, an unavailable solver),
        ``EXIT_INTERNAL`` (3: any other exception), 130 on KeyboardInterrupt and 141 on a
        closed output pipe. Errors are printed as one line on stderr.

    Raises
    ------
    SystemExit
        From argparse: ``--help`` (code 0) or invalid arguments (code 2).
    Exception
        With ``--debug`` or the environment variable ``RRNN_TRACEBACK`` set, the exceptions
        that exit codes 1 to 3 stand for are re-raised instead.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(args.debug or os.environ.get("RRNN_TRACEBACK"))
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly (Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a process killed by a closed pipe
    except NotCertifiable as exc:  # a projection or a fit's start the rigorous check refuses
        if debug:
            raise
        print(f"rrnn {args.command}: not certified: {_one_line(exc)}", file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    except (ValueError, OSError, MissingDependency, UnsupportedDependency, SolverUnavailable) as exc:  # user-fixable
        if debug:
            raise
        print(f"rrnn {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        hint = " (resume with --resume CHECKPOINT)" if getattr(args, "checkpoint", None) else ""
        print(f"rrnn {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:  # RuntimeError, TypeError, KeyError...: input errors are ValueError, so a bug
        if debug:
            raise
        print(f"rrnn {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug in rrnn_convex, "
              f"not a problem with the input; please report it with the output of rrnn --debug ... or "
              f"RRNN_TRACEBACK=1 rrnn ...)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
