"""Certification numerics at the extremes (issue 15, sections 1, 3, 4 and SCS's stdout noise).

Claims tested here:

* underflow: no rigorous bound of :mod:`rrnn_convex.rigorous` is broken by subnormal numbers, and
  the hand-crafted subnormal certificate of a non-contracting model in issue 15 is refused;
* bounded time: every solver call has a time limit, ``certify(time_limit=)`` is an overall
  budget, and weights whose LMI overflows float64 are refused up front;
* honest answers: a gamma above a certified one is certified (the LMI is monotone in gamma),
  verify at gamma = 1e308 answers, projection of a member is the identity, a contraction margin
  at solver noise is "not certifiable (within solver accuracy)", and the answer does not depend
  on the scale of the state equations (``model.transform(s I)``, s in 1e-150 .. 1e150).

Every certificate is judged by the exact rational oracle of tests/test_fuzz.py, which shares no
code with the package.
"""
from __future__ import annotations

import time
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.certify import Certificate
from rrnn_convex.rigorous import ETA, Bounded, prove_pd

from conftest import random_rnn
from test_fuzz import exact_certificate_holds, exact_pd, true_slope_bounds

TINY = 2.0 ** -1022  # smallest normal float64


def _fr(x) -> Fraction:
    return Fraction(float(x))


# ============================================================================= 1. underflow
# issue 15, section 1: A = E^-1 F has A^2 = rho^2 I with rho^2 - 1 = +6e-9 (exactly, in rationals)
ISSUE_E = np.diag([26016.888945152354, 97029.16627545822])
ISSUE_F = np.array([[0.0, 103250.74815809856], [24449.189023892777, 0.0]])


def issue_model() -> ImplicitRNN:
    return ImplicitRNN(E=ISSUE_E, F=ISSUE_F, B1=np.zeros((2, 1)), B2=np.zeros((2, 1)), C1=np.zeros((1, 2)),
                       C2=np.zeros((1, 2)), activation="relu")


def test_issue_model_does_not_contract_in_exact_arithmetic():
    """The premise, checked independently: rho(E^-1 F) > 1, so no certificate can be true."""
    a = _fr(ISSUE_F[0, 1]) / _fr(ISSUE_E[0, 0])
    b = _fr(ISSUE_F[1, 0]) / _fr(ISSUE_E[1, 1])
    assert a * b - 1 > Fraction(5, 10 ** 9)  # A^2 = ab I


def test_subnormal_certificate_of_a_non_contracting_model_is_refused():
    model = issue_model()
    Q = np.diag([272.0, 308.0]) * 2.0 ** -1074
    lam = np.array([6.656e-320])
    assert not exact_certificate_holds(model, Q, lam, None, (0.0, 1.0))
    cert = Certificate(model_hash=model.weights_hash(), contracting=True, gamma=None, Q=Q, lam=lam,
                       alpha=0.0, beta=1.0)
    check = cert.verify(model)
    assert not check.ok, "FALSE CERTIFICATE: a subnormal metric for a non-contracting model verified"
    assert "subnormal" in check.reason or "float64" in check.reason, check.reason


def test_subnormal_certificates_near_the_issues_one_are_all_refused():
    """The neighbourhood of the issue's certificate: Q = diag(68 k + d1, 77 k + d2) eta (the exact
    LMI's diagonal is E'QE - F'QF, and 77/68 is within 2e-8 of both ratios that make it
    vanish), lam from 2000 to 30000 eta. None is true (the model does not contract), so none
    may verify."""
    model = issue_model()
    for k in range(1, 20):
        for d1 in (-1, 0, 1):
            for d2 in (-1, 0, 1):
                for lam in (2000, 6000, 13472, 30000):
                    Q = np.diag([68.0 * k + d1, 77.0 * k + d2]) * ETA
                    cert = Certificate(model_hash=model.weights_hash(), contracting=True, gamma=None, Q=Q,
                                       lam=np.array([lam * ETA]), alpha=0.0, beta=1.0)
                    assert not cert.verify(model).ok, (k, d1, d2, lam)


def test_bounded_products_and_sums_bound_the_error_in_the_subnormal_range():
    """|exact - val| <= err for products that underflow (Demmel's model fl(ab) = ab(1+d) + e,
    |e| <= eta/2), elementwise, in matrix products and through a chain of them."""
    rng = np.random.default_rng(4)
    for trial in range(30):
        k = int(rng.integers(1, 6))
        A = rng.standard_normal((3, k)) * 2.0 ** rng.integers(-1074, -1000, size=(3, k))
        B = rng.standard_normal((k, 2)) * 2.0 ** rng.integers(-40, 40, size=(k, 2))
        C = rng.standard_normal((2, 2)) * 10.0 ** rng.uniform(-3, 3)
        s = float(rng.uniform(1e-3, 1.0))
        for res, exact in (
            (Bounded(A) @ Bounded(B), [[sum(_fr(A[i, t]) * _fr(B[t, j]) for t in range(k)) for j in range(2)]
                                      for i in range(3)]),
            ((Bounded(A) @ Bounded(B)) @ Bounded(C),
             [[sum(_fr(A[i, t]) * _fr(B[t, l]) * _fr(C[l, j]) for t in range(k) for l in range(2))
               for j in range(2)] for i in range(3)]),
            (Bounded(A[:, :1]) * s, [[_fr(A[i, 0]) * _fr(s)] for i in range(3)]),
            (Bounded(A[:, :1]) * s + Bounded(A[:, :1]),
             [[_fr(A[i, 0]) * _fr(s) + _fr(A[i, 0])] for i in range(3)]),
        ):
            for i in range(len(exact)):
                for j in range(len(exact[0])):
                    assert abs(_fr(res.val[i, j]) - exact[i][j]) <= _fr(res.err[i, j]), (trial, i, j)


def test_prove_pd_error_norm_does_not_underflow():
    """A perturbation bound of 1e-170 per entry: the exact matrix may be [[1, 1.5], [1.5, 1]] e-170,
    which is indefinite, so PD must not be "proven" (a Frobenius norm computed from squares
    underflows to 0 here)."""
    M = Bounded(1e-170 * np.array([[1.0, 0.5], [0.5, 1.0]]), 1e-170 * np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert not exact_pd([[Fraction(1), Fraction(3, 2)], [Fraction(3, 2), Fraction(1)]])
    assert not prove_pd(M).ok


@pytest.mark.parametrize("scale", [2.0 ** -1060, 2.0 ** -1000, 1e-300, 1e300, 2.0 ** 1000])
def test_prove_pd_is_scale_free_and_sound(scale):
    """prove_pd(s M) == prove_pd(M) for well-conditioned M at any float64 scale (no overflowing
    norm), and whatever it accepts is PD in exact arithmetic."""
    rng = np.random.default_rng(5)
    accepted = 0
    for _ in range(20):
        X = rng.standard_normal((4, 4))
        M = X @ X.T + 0.1 * np.eye(4)
        M = 0.5 * (M + M.T)
        S = M * scale
        proof = prove_pd(Bounded(S, np.abs(S) * 2.0 ** -50))
        if proof.ok:
            accepted += 1
            exact = [[_fr(x) for x in row] for row in S]
            assert exact_pd(exact)
            assert proof.lower_bound > 0
    if scale >= 2.0 ** -1000:  # subnormal matrices may be refused, normal ones must not
        assert accepted == 20


def test_certificate_margin_in_the_subnormal_range_is_refused():
    """A true certificate scaled (Q, lam) -> 2^-1060 (Q, lam): the contraction LMI is homogeneous,
    so it stays true, but its margin (~1e-319) is not one float64 can prove. verify must say so
    (or verify it, if it rescales exactly); it must not crash."""
    model = random_rnn(np.random.default_rng(1), 2, 2, 1, 1, activation="tanh")
    c = certify(model, contraction_only=True)
    assert c.certified
    tiny = replace(c, Q=c.Q * 2.0 ** -1060, lam=c.lam * 2.0 ** -1060)
    check = tiny.verify(model)
    if check.ok:
        assert exact_certificate_holds(model, tiny.Q, tiny.lam, None, true_slope_bounds(model.activation))
    else:
        assert "subnormal" in check.reason or "float64" in check.reason, check.reason


# ============================================================================= 3. bounded time
def _elman_1e308():
    return ImplicitRNN.from_elman(0.5 * np.eye(2), np.ones((2, 1)), C=np.array([[1e308, 1e308]]), D=np.zeros((1, 1)))


def test_weights_whose_LMI_overflows_are_refused_up_front():
    """Issue 15: C = [[1e308, 1e308]] kept SCS busy for minutes. C'C / gamma overflows float64
    for any gamma below 1e308: certification is meaningless at this scale; say so at once."""
    model = _elman_1e308()
    t0 = time.perf_counter()
    cert = certify(model)
    elapsed = time.perf_counter() - t0
    assert not cert.certified
    assert "meaningless" in cert.reason and "float64" in cert.reason, cert.reason
    assert not cert.attempts, "refused up front: no solver should have run"
    assert elapsed < 10.0
    assert cert.formulation == "dense", "the refusal records the formulation auto resolved to (2 + 2 neurons)"
    for kw in ({"gamma": 1e300}, {"contraction_only": True}):
        assert not certify(model, **kw).certified


def test_every_solver_call_gets_a_time_limit(monkeypatch):
    import cvxpy as cp

    from rrnn_convex.project import project

    calls = []
    real = cp.Problem.solve

    def spy(self, *args, **kwargs):
        calls.append(dict(kwargs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", spy)
    model = random_rnn(np.random.default_rng(7), 3, 2, 1, 1, activation="relu", scale=1.3)
    certify(model)
    certify(model, gamma=50.0)
    certify(model, solver="SCS", fallback=False)
    n_certify = len(calls)
    project(model, gamma=1e-3)  # moves the model: projection SDPs, then re-certification
    assert len(calls) > n_certify + 1
    for kw in calls:
        limit = kw.get("time_limit", kw.get("time_limit_secs"))
        assert limit is not None and 0 < limit <= 600, kw


def test_certify_time_limit_is_an_overall_budget_with_the_attempts_recorded():
    model = random_rnn(np.random.default_rng(8), 12, 12, 2, 2, activation="tanh")
    t0 = time.perf_counter()
    cert = certify(model, time_limit=0.05)
    elapsed = time.perf_counter() - t0
    assert not cert.certified
    assert cert.reason.startswith("not certified: time limit"), cert.reason
    assert cert.attempts, "the attempts made before the limit must be recorded"
    assert elapsed < 15.0  # the budget plus building one SDP on a loaded 2-core machine
    with pytest.raises(ValueError, match="time_limit"):
        certify(model, time_limit=-1.0)


def test_kyp_path_respects_the_time_limit():
    from rrnn_convex.scalable import certify_scalable

    model = random_rnn(np.random.default_rng(9), 20, 14, 1, 1, activation="relu")
    cert = certify_scalable(model, time_limit=1e-3)
    assert not cert.certified and cert.reason.startswith("not certified: time limit"), cert.reason


def test_cli_certify_and_project_take_a_time_limit(tmp_path):
    from test_cli import cli

    model = random_rnn(np.random.default_rng(8), 12, 12, 2, 2, activation="tanh")
    path = model.save(tmp_path / "m.npz")
    res = cli("certify", path, "--time-limit", "0.01", "--out", tmp_path / "c.json")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "time limit" in res.stdout
    res = cli("project", path, "--time-limit", "0.01", "--out", tmp_path / "p.npz")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "time limit" in res.stdout + res.stderr


# ============================================================================= 4. honest answers
@pytest.fixture(scope="module")
def tanh_model():
    model = random_rnn(np.random.default_rng(3), 3, 3, 1, 1, activation="tanh")
    cert = certify(model)
    assert cert.certified
    return model, cert


def _assert_true(model, cert):
    assert cert.certified, cert.reason
    assert cert.verify(model).ok
    assert exact_certificate_holds(model, cert.Q, cert.lam, cert.gamma, true_slope_bounds(model.activation))


def test_a_gamma_above_a_certified_one_is_certified_from_1e_minus3_to_1e15(tanh_model):
    """The LMI is monotone in gamma (M(G) = M(g) + (G - g) diag(0, 0, I, I)): once some gamma is
    certified, every larger one must be. Was: 1e12 and 1e15 "not certifiable"."""
    model, best = tanh_model
    certified_at = []
    for G in np.logspace(-3, 15, 19):
        cert = certify(model, gamma=G)
        if cert.certified:
            _assert_true(model, cert)
            assert cert.gamma == G
            certified_at.append(G)
        else:
            assert G < best.gamma, f"gamma={G:g} above the certified {best.gamma:g} was refused: {cert.reason}"
            assert not certified_at, f"gamma={G:g} refused although {certified_at[-1]:g} was certified"
    assert certified_at and certified_at[0] <= 10 * best.gamma


def test_verify_at_gamma_1e308_answers(tanh_model):
    model, best = tanh_model
    for G in (1e200, 1e308, float(np.finfo(np.float64).max)):
        huge = replace(best, gamma=G)
        check = huge.verify(model)  # was: LinAlgError
        assert check.ok, check.reason  # true by monotonicity, and provable after equilibration
        assert exact_certificate_holds(model, huge.Q, huge.lam, G, true_slope_bounds(model.activation))


@pytest.mark.parametrize("gamma", [None, 1e12])
def test_projection_of_a_member_comes_back_unchanged(tanh_model, gamma):
    from rrnn_convex.project import project

    model, _ = tanh_model
    res = project(model, gamma=gamma)
    assert not res.moved and res.distance == 0.0
    assert res.model.weights_hash() == model.weights_hash()
    _assert_true(res.model, res.certificate)


def test_marginal_contraction_is_not_certifiable_rather_than_not_contracting():
    """x+ = relu((1 - 1e-12) x + u) contracts (by 1e-12 per step); a margin at solver noise must
    not be reported as "not contracting"."""
    model = ImplicitRNN.from_elman((1 - 1e-12) * np.eye(2), np.ones((2, 1)), C=np.ones((1, 2)),
                                   D=np.zeros((1, 1)))
    for kw in ({}, {"contraction_only": True}):
        cert = certify(model, **kw)
        assert not cert.certified
        assert "not certifiable (within solver accuracy)" in cert.reason, cert.reason
        assert "not contracting" not in cert.reason
    clear = ImplicitRNN.from_elman(1.5 * np.eye(2), np.ones((2, 1)), C=np.ones((1, 2)), D=np.zeros((1, 1)))
    assert certify(clear, contraction_only=True).reason.startswith("not contracting")


SCALES = [1e-150, 1e-100, 2.0 ** -300, 1e-50, 1e-8, 1e8, 1e50, 2.0 ** 300, 1e100, 1e150]


@pytest.mark.parametrize("s", SCALES)
def test_answer_does_not_depend_on_the_units_of_the_state_equations(tanh_model, s):
    """transform(s I) is the same model (E, F, B1, B2 and bx times s): same certified gamma, and a
    true certificate. Was: 1e-100 and 1e-150 not certified (a norm in prove_pd overflowed)."""
    model, best = tanh_model
    scaled = model.transform(s * np.eye(model.n))
    cert = certify(scaled)
    _assert_true(scaled, cert)
    assert cert.gamma == pytest.approx(best.gamma, rel=1e-6)
    c = certify(scaled, contraction_only=True)
    _assert_true(scaled, c)
    # the original certificate, mapped exactly (powers of two), verifies in both units
    if np.frexp(s)[0] == 0.5:
        mapped = replace(best, model_hash=scaled.weights_hash(), Q=best.Q / s ** 2)
        assert mapped.verify(scaled).ok


# ============================================================================= 5. solver noise
def test_solver_stdout_noise_is_kept_off_the_terminal(capfd):
    """SCS prints "ERROR: could not determine problem status" to the C stdout; the status is
    recorded in the attempt, so the text belongs there and not on the user's terminal."""
    import cvxpy as cp

    from rrnn_convex import solvers

    x = cp.Variable(2)
    big = 1e300
    A = np.array([[big, big], [1.0, -big]])
    prob = cp.Problem(cp.Minimize(cp.sum(x)), [A @ x >= np.array([big, 1.0]), x >= -big])
    att = solvers.run(prob, "SCS", max_iters=5)
    out, err = capfd.readouterr()
    assert "could not determine" not in out + err
    assert att.status == "solver_error"
    assert "could not determine" in att.detail
