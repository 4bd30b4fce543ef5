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
