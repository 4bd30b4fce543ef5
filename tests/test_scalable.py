"""The scalable certification path (KYP frequency reduction + Riccati metric) against the exact SDP.

Claims: it certifies the same smallest gamma as the exact fixed-weight SDP (to well within 1%);
it never returns an unverified claim; a non-contracting model is "not certified" with a reason;
a tampered certificate fails verification.
"""
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.examples import example_elman
from rrnn_convex.scalable import certify_scalable

from conftest import random_rnn


def _implicit_rnn(seed: int, n: int, q: int, m: int, p: int, activation: str = "relu") -> ImplicitRNN:
    """A contracting implicit RNN with E != I (the explicit form is a random_rnn)."""
    rng = np.random.default_rng(seed)
    base = random_rnn(rng, n=n, q=q, m=m, p=p, activation=activation)
    S = np.eye(n) + 0.3 * rng.standard_normal((n, n))
    return base.transform(S)


CASES = [
    ("elman n=8", lambda: example_elman(n=8, seed=3)),
    ("elman n=16", lambda: example_elman(n=16, seed=1)),
    ("elman n=12 tanh m=2 p=2", lambda: example_elman(n=12, m=2, p=2, seed=5, activation="tanh")),
    ("implicit E!=I n=6 q=9", lambda: _implicit_rnn(7, n=6, q=9, m=2, p=1)),
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def pair(request):
    model = request.param[1]()
    return model, certify(model, solver="CLARABEL"), certify_scalable(model, fallback=False)


def test_scalable_gamma_agrees_with_exact_sdp_and_both_verify(pair):
    model, exact, fast = pair
    assert exact.certified and exact.verify(model)
    assert fast.certified and fast.verify(model), fast.reason
    assert fast.formulation == "kyp" and fast.solver == "KYP-IPM"
    # the exact optimum is a lower bound for any certified gamma (up to the SDP margins)
    assert fast.gamma >= exact.gamma * (1 - 1e-6)
    assert fast.gamma == pytest.approx(exact.gamma, rel=1e-2)
    assert fast.gamma <= exact.gamma * (1 + 2e-3)  # default rtol 1e-3 (+ margins)


def test_scalable_relaxation_lower_bound_brackets_the_exact_optimum(pair):
    model, exact, fast = pair
    low = [a["lower_bound"] for a in fast.attempts if "lower_bound" in a][-1]
    # a lower bound of the SDP with the path's margin eps (~1e-7 relative), so of the exact
    # optimum up to that margin
    assert low <= exact.gamma * (1 + 1e-5) and low <= fast.gamma * (1 + 1e-14)


def test_fixed_gamma_decided_like_the_exact_path():
    model = example_elman(n=10, seed=2)
    g = certify(model, solver="CLARABEL").gamma
    above = certify_scalable(model, gamma=1.02 * g, fallback=False)
    assert above.certified and above.gamma == 1.02 * g and above.verify(model)
    below = certify_scalable(model, gamma=0.97 * g, fallback=False)
    assert not below.certified and "not certifiable" in below.reason
    assert not below.verify(model)


def test_contraction_only():
    model = _implicit_rnn(11, n=5, q=7, m=1, p=2, activation="tanh")
    cert = certify_scalable(model, contraction_only=True, fallback=False)
    assert cert.certified and cert.gamma is None and cert.verify(model)


@pytest.mark.parametrize("a", [1.5, -1.2])
def test_non_contracting_loop_is_not_certified_with_a_reason(a):
    # x+ = a relu(x) + u: the slope-1 linearisation has |a| > 1
    model = ImplicitRNN(F=[[0.0]], B1=[[a]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation="relu")
    cert = certify_scalable(model, fallback=False)
    assert not cert.certified and cert.gamma is None and cert.Q is None
    assert "not contracting" in cert.reason
    assert not cert.verify(model)


def test_unstable_linear_part_is_not_certified_with_a_reason():
    n = 6
    rng = np.random.default_rng(0)
    model = ImplicitRNN(F=1.1 * np.eye(n), B1=0.1 * rng.standard_normal((n, n)), B2=np.ones((n, 1)),
                        C1=0.1 * rng.standard_normal((n, n)), C2=np.ones((1, n)))
    cert = certify_scalable(model, fallback=False)
    assert not cert.certified and "spectral radius" in cert.reason


def test_tampered_certificate_fails_verification():
    model = example_elman(n=12, seed=4)
    cert = certify_scalable(model, fallback=False)
    assert cert.certified and cert.verify(model)
    assert not cert.verify(model) is False  # sanity: a Verification, truthy
    assert not replace(cert, gamma=0.9 * cert.gamma).verify(model)
    Q = cert.Q.copy()
    Q[0, 0] *= 0.5
    assert not replace(cert, Q=Q).verify(model)
    lam = cert.lam.copy()
    lam[0] = -1e-3
    assert not replace(cert, lam=lam).verify(model)
    W = model.C1.copy()
    W[0, 0] += 1e-6  # different weights: the hash no longer matches
    assert not cert.verify(replace(model, C1=W))
