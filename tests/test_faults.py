"""Solver faults (issue 9, item 2): certify must fall back or answer "not certified" with a reason.

Faults are injected around :func:`rrnn_convex.solvers.run` (the one place certify talks to a
solver); the "raise" fault goes one level deeper and makes ``cvxpy.Problem.solve`` itself raise,
so run's own exception handling is exercised. Each fault hits a solver *position*: the primary
solver (Clarabel), the fallback (SCS), all solvers, only the first solver call of a certify run
(a transient fault), or only the contraction SDP.

For every (fault, position) cell four scenarios run: the smallest gamma of a contracting model,
a fixed gamma above its optimum, contraction only, and a non-contracting model. In every cell:
nothing raises, an uncertified answer carries a reason, the non-contracting model is never
certified, and every certificate passes verify() and an independent exact rational check of
its LMI (tests/test_fuzz.py). Where a working solver remains and the fault only changes the
status (not the point), the contracting model must still be certified (the fallback works).

``python tests/test_faults.py`` prints the fault matrix.
"""
from __future__ import annotations

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify, solvers
from rrnn_convex.certify import Certificate

from conftest import random_rnn
from test_fuzz import exact_certificate_holds, true_slope_bounds

FAULTS = ("raise", "solver_error_status", "optimal_inaccurate", "infeasible_inaccurate", "infeasible",
          "time_limit", "none_values", "indefinite_Q", "nan_point", "gamma_understated", "tiny_Q_noise")
POSITIONS = ("primary", "fallback", "all", "first_call", "contraction_sdp")
#: faults that leave the returned point intact or return no point: a fallback solver can rescue
STATUS_ONLY = {"raise", "solver_error_status", "infeasible_inaccurate", "infeasible", "time_limit",
               "none_values", "optimal_inaccurate"}


def sdp_mode(problem) -> str:
    names = {v.name() for v in problem.variables()}
    if "gamma" in names:
        return "min_gamma"
    if any(getattr(c, "OP_NAME", "") == "==" or type(c).__name__ == "Equality" for c in problem.constraints):
        return "contraction"
    return "fixed_gamma"


def _var(problem, name):
    for v in problem.variables():
        if v.name() == name:
            return v
    return None


class Injector:
    """A replacement for solvers.run that injects ``fault`` at ``position``; counts injections."""

    def __init__(self, fault, position, real_run):
        self.fault, self.position, self.real_run = fault, position, real_run
        self.calls = 0
        self.injected = 0

    def hit(self, problem, solver) -> bool:
        self.calls += 1
        if self.position == "primary":
            return solver == "CLARABEL"
        if self.position == "fallback":
            return solver == "SCS"
        if self.position == "all":
            return True
        if self.position == "first_call":
            return self.calls == 1
        if self.position == "contraction_sdp":
            return sdp_mode(problem) == "contraction"
        raise ValueError(self.position)

    def __call__(self, problem, solver, **kw):
        if not self.hit(problem, solver):
            return self.real_run(problem, solver, **kw)
        self.injected += 1
        f = self.fault
        if f == "raise":
            def boom(*a, **k):
                raise RuntimeError("injected: solver crashed")
            problem.solve = boom  # instance attribute shadows cvxpy's method for this call
            try:
                return self.real_run(problem, solver, **kw)
            finally:
                del problem.solve
        att = self.real_run(problem, solver, **kw)
        if f == "solver_error_status":
            return solvers.Attempt(solver, "solver_error", att.seconds, "injected fault")
        if f == "optimal_inaccurate":
            return solvers.Attempt(solver, "optimal_inaccurate", att.seconds, "injected")
        if f in ("infeasible_inaccurate", "infeasible", "time_limit", "none_values"):
            for v in problem.variables():
                v.save_value(None)
            status = {"time_limit": "user_limit", "none_values": "optimal"}.get(f, f)
            return solvers.Attempt(solver, status, att.seconds + (3600.0 if f == "time_limit" else 0.0),
                                   "injected")
        Q = _var(problem, "Q")
        if Q is None or Q.value is None:
            return att
        if f == "indefinite_Q":
            Qv = np.asarray(Q.value)
            w, V = np.linalg.eigh(Qv)
            Q.save_value(Qv - 2.0 * abs(w[-1]) * np.outer(V[:, -1], V[:, -1]))
            return solvers.Attempt(solver, "optimal", att.seconds, "injected")
        if f == "nan_point":
            Q.save_value(np.full(Q.shape, np.nan))
            lam = _var(problem, "lam")
            if lam is not None:
                lam.save_value(np.full(lam.shape, np.inf))
            return solvers.Attempt(solver, "optimal", att.seconds, "injected")
        if f == "gamma_understated":  # the solver claims a better objective than its point has
            for name in ("gamma", "t"):
                v = _var(problem, name)
                if v is not None and v.value is not None:
                    v.save_value(np.asarray(0.5 * v.value if name == "gamma" else 2.0 * v.value + 1.0))
            return solvers.Attempt(solver, "optimal", att.seconds, "injected")
        if f == "tiny_Q_noise":
            Qv = np.asarray(Q.value)
            R = np.random.default_rng(self.calls).standard_normal(Qv.shape)
            Q.save_value(Qv + 1e-7 * np.linalg.norm(Qv, 2) * (R + R.T))
            return solvers.Attempt(solver, "optimal", att.seconds, "injected")
        raise ValueError(f)


# ----------------------------------------------------------------------------- scenarios
def _good_model():
    return random_rnn(np.random.default_rng(4), n=3, q=3, m=1, p=1, activation="tanh", E_far=True)


def _bad_model():
    # unstable explicit part (rho = 1.2) and a relu loop: not contracting
    return ImplicitRNN(F=[[0.0]], B1=[[1.2]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation="relu")


_REF = {}


def reference_gamma():
    if "g" not in _REF:
        _REF["g"] = certify(_good_model()).gamma
    return _REF["g"]


SCENARIOS = ("min_gamma", "fixed_gamma", "contraction_only", "not_contracting")


def run_scenario(name):
    if name == "min_gamma":
        return _good_model(), lambda m: certify(m)
    if name == "fixed_gamma":
        return _good_model(), lambda m: certify(m, gamma=2.0 * reference_gamma())
    if name == "contraction_only":
        return _good_model(), lambda m: certify(m, contraction_only=True)
    return _bad_model(), lambda m: certify(m)


def judge_cert(model: ImplicitRNN, cert: Certificate) -> list[str]:
    out = []
    if not isinstance(cert, Certificate):
        return [f"certify returned {type(cert).__name__}"]
    if cert.certified:
        v = cert.verify(model)
        if not v.ok:
            out.append(f"certified answer fails verify: {v.reason}")
        elif not exact_certificate_holds(model, cert.Q, cert.lam, cert.gamma, true_slope_bounds(model.activation)):
            out.append("FALSE CERTIFICATE (exact rational check)")
    else:
        if not cert.reason:
            out.append("not certified without a reason")
        if cert.gamma is not None or cert.Q is not None:
            out.append("an uncertified answer carries a gamma or Q")
    return out


def run_cell(fault, position, monkeypatch=None) -> dict:
    """Outcome per scenario: 'certified' / 'not certified: <reason>' / 'CRASH: ...', plus problems."""
    real_run = solvers.run
    reference_gamma()  # computed without faults
    row, problems = {}, []
    for sc in SCENARIOS:
        inj = Injector(fault, position, real_run)
        if monkeypatch is not None:
            monkeypatch.setattr(solvers, "run", inj)
        else:
            solvers.run = inj
        model, call = run_scenario(sc)
        try:
            cert = call(model)
        except Exception as exc:  # noqa: BLE001
            row[sc] = f"CRASH {type(exc).__name__}: {exc}"
            problems.append(f"{sc}: crashed: {exc!r}")
            continue
        finally:
            solvers.run = real_run
            if monkeypatch is not None:
                monkeypatch.setattr(solvers, "run", real_run)
        problems += [f"{sc}: {p}" for p in judge_cert(model, cert)]
        if sc == "not_contracting" and cert.certified:
            problems.append("not_contracting: FALSE CERTIFICATE of a non-contracting model")
        if cert.certified:
            used = cert.solver or "?"
            row[sc] = f"certified ({used}{', g=%.4g' % cert.gamma if cert.gamma else ''})"
        else:
            row[sc] = "not certified: " + cert.reason[:70]
        row[sc + "_injected"] = inj.injected
        row[sc + "_attempts"] = cert.attempts
    return {"row": row, "problems": problems}


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("fault", FAULTS)
def test_fault_matrix_cell(fault, position, monkeypatch):
    res = run_cell(fault, position, monkeypatch)
    row = res["row"]
    assert not res["problems"], "\n".join(res["problems"])
    # the fault was really injected somewhere (position 'fallback' may never be reached)
    if position in ("primary", "all", "first_call"):
        assert row["min_gamma_injected"] > 0
    # graceful fallback: a status-only fault on the primary solver (or a transient one) leaves
    # a working solver, so the contracting model must still be certified
    if fault in STATUS_ONLY and position in ("primary", "fallback", "first_call"):
        for sc in ("min_gamma", "fixed_gamma", "contraction_only"):
            assert row[sc].startswith("certified"), f"{sc}: {row[sc]}"
    if position == "all" and fault in ("raise", "solver_error_status", "infeasible", "time_limit"):
        for sc in SCENARIOS:
            assert row[sc].startswith("not certified"), f"{sc}: {row[sc]}"
    # the attempts record the faults (status or detail) when they hit the first solve
    if position == "primary" and fault in ("raise", "solver_error_status", "time_limit", "infeasible"):
        first = row["min_gamma_attempts"][0]
        assert first["solver"] == "CLARABEL"
        assert first["status"] in ("solver_error", "user_limit", "infeasible"), first
        if fault == "raise":
            assert "injected: solver crashed" in first["detail"]


def test_fault_reasons_name_the_failure():
    """With every solver failing, the reason says so (not a generic message)."""
    real_run = solvers.run
    try:
        solvers.run = Injector("raise", "all", real_run)
        cert = certify(_good_model())
        fixed = certify(_good_model(), gamma=10.0)
    finally:
        solvers.run = real_run
    assert "no solver returned a point" in cert.reason
    assert "no solver returned a point" in fixed.reason and "fixed-gamma" in fixed.reason
    assert all(a["status"] == "solver_error" for a in cert.attempts)


def test_real_time_limit_falls_back_or_reports(monkeypatch):
    """A genuine solver time limit (options passed to Clarabel and SCS), not an emulated one."""
    monkeypatch.setitem(solvers.SOLVER_OPTIONS, "CLARABEL", dict(solvers.SOLVER_OPTIONS["CLARABEL"], time_limit=1e-6))
    monkeypatch.setitem(solvers.SOLVER_OPTIONS, "SCS", dict(solvers.SOLVER_OPTIONS["SCS"], time_limit_secs=1e-6))
    model = _good_model()
    cert = certify(model)
    assert not judge_cert(model, cert)
    assert any(a["status"] == "user_limit" for a in cert.attempts)


# Was: check_point marked attempts[-1] instead of the attempt that produced the point.
def test_attempts_log_is_consistent_under_time_limit(monkeypatch):
    monkeypatch.setitem(solvers.SOLVER_OPTIONS, "CLARABEL", dict(solvers.SOLVER_OPTIONS["CLARABEL"], time_limit=1e-6))
    monkeypatch.setitem(solvers.SOLVER_OPTIONS, "SCS", dict(solvers.SOLVER_OPTIONS["SCS"], time_limit_secs=1e-6))
    model = random_rnn(np.random.default_rng(4), n=3, q=3, m=1, p=1)
    cert = certify(model)
    failed_words = ("not proven", "must be positive", "non-finite", "did not pass")
    bad = [a for a in cert.attempts if a.get("verified") is True and any(w in a.get("detail", "") for w in failed_words)]
    assert not bad, bad


# ----------------------------------------------------------------------------- the printed matrix
def fault_matrix() -> list[tuple[str, str, dict]]:
    out = []
    for fault in FAULTS:
        for position in POSITIONS:
            out.append((fault, position, run_cell(fault, position)))
    return out


def _short(s: str) -> str:
    if s.startswith("certified"):
        return "CERT"
    if s.startswith("CRASH"):
        return "CRASH"
    r = s.lower()
    for key, tag in (("not contracting", "no:infeas"), ("no solver returned", "no:nosolver"),
                     ("did not pass", "no:check"), ("not certifiable", "no:gamma"), ("internal", "no:internal")):
        if key in r:
            return tag
    return "no:other"


if __name__ == "__main__":  # pragma: no cover
    import sys
    import time
    t0 = time.perf_counter()
    rows = fault_matrix()
    w = max(len(f) for f in FAULTS)
    print(f"{'fault':<{w}}  {'position':<16}" + "".join(f"{s:<18}" for s in SCENARIOS) + "problems")
    nprob = 0
    for fault, position, res in rows:
        cells = "".join(f"{_short(res['row'][s]):<18}" for s in SCENARIOS)
        nprob += len(res["problems"])
        print(f"{fault:<{w}}  {position:<16}{cells}{len(res['problems'])}")
    print(f"\n{len(rows)} cells, {nprob} problems, {time.perf_counter() - t0:.1f} s")
    sys.exit(1 if nprob else 0)


def test_a_solver_panic_is_a_solver_error_and_an_interrupt_is_not():
    """Clarabel's Rust panics reach Python as pyo3's PanicException, a BaseException (seen in a
    fit: 'Eigval error' in the PSD cone's step length): run() reports it as a solver error like
    any crash, while KeyboardInterrupt still stops the caller."""
    import cvxpy as cp

    PanicException = type("PanicException", (BaseException,), {})  # pyo3_runtime's class, by name
    x = cp.Variable()
    problem = cp.Problem(cp.Minimize(cp.square(x - 1)))
    for exc, stops in ((PanicException("Eigval error: Eigen(1)"), False), (KeyboardInterrupt(), True)):
        def boom(*a, exc=exc, **k):
            raise exc
        problem.solve = boom
        try:
            if stops:
                with pytest.raises(KeyboardInterrupt):
                    solvers.run(problem, "CLARABEL")
            else:
                att = solvers.run(problem, "CLARABEL")
                assert att.status == "solver_error" and "panicked: Eigval error" in att.detail, att
        finally:
            del problem.solve
