"""verify() is a real check: it accepts true certificates and rejects every tampered one."""
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from rrnn_convex import Certificate, certify
from rrnn_convex.rigorous import Bounded, prove_pd

from conftest import random_rnn


@pytest.fixture(scope="module")
def certified():
    rng = np.random.default_rng(21)
    model = random_rnn(rng, n=4, q=4, m=1, p=1, activation="relu")
    cert = certify(model)
    assert cert.certified
    return model, cert


def test_accepts_untouched_certificate(certified):
    model, cert = certified
    check = cert.verify(model)
    assert check.ok and check.proven_margin > 0


def test_rejects_certificate_for_another_model(certified):
    model, cert = certified
    other = replace(model, D22=model.D22 + 1e-12)
    check = cert.verify(other)
    assert not check.ok and "hash" in check.reason


def test_rejects_zero_lambda(certified):
    model, cert = certified
    assert not replace(cert, lam=np.zeros_like(cert.lam)).verify(model)


def test_rejects_negated_Q(certified):
    model, cert = certified
    assert not replace(cert, Q=-cert.Q).verify(model)


def test_rejects_gamma_one_percent_below_optimum(certified):
    model, cert = certified
    assert not replace(cert, gamma=0.99 * cert.gamma).verify(model)


def test_rejects_negative_lambda_and_asymmetric_Q(certified):
    model, cert = certified
    lam = cert.lam.copy()
    lam[0] = -1e-3
    assert "negative" in replace(cert, lam=lam).verify(model).reason
    Q = cert.Q.copy()
    Q[0, 1] += 1e-9
    assert "symmetric" in replace(cert, Q=Q).verify(model).reason


def test_rejects_wider_activation(certified):
    model, cert = certified
    tanh_model = replace(model, activation="sigmoid")  # other weights hash: hash check fires first
    assert not cert.verify(tanh_model)
    narrow = replace(cert, beta=0.5)  # certificate for slopes in [0, 0.5] does not cover relu
    assert "slope" in narrow.verify(model).reason


def test_json_round_trip_verifies(certified, tmp_path):
    model, cert = certified
    path = tmp_path / "cert.json"
    cert.to_json(path)
    back = Certificate.from_json(path)
    assert back.verify(model)
    assert back.gamma == cert.gamma and np.array_equal(back.Q, cert.Q)
    assert back.model_hash == model.weights_hash()
    assert list(tmp_path.iterdir()) == [path], "atomic write must leave no temporary file"


def test_json_rejects_other_schema():
    with pytest.raises(ValueError, match="schema"):
        Certificate.from_json('{"schema": "something else"}')


# ---------------------------------------------------------------- the rigorous check itself
def _exact_pd(M) -> bool:
    """Exact rational test: LDL' without pivoting (Sylvester) on the rational matrix."""
    A = [[Fraction(float(x)) for x in row] for row in M]
    N = len(A)
    for k in range(N):
        if A[k][k] <= 0:
            return False
        for i in range(k + 1, N):
            f = A[i][k] / A[k][k]
            for j in range(k, N):
                A[i][j] -= f * A[k][j]
    return True


def test_prove_pd_agrees_with_exact_rational_arithmetic_near_the_boundary():
    rng = np.random.default_rng(0)
    proven = 0
    for trial in range(60):
        N = int(rng.integers(2, 7))
        X = rng.standard_normal((N, N))
        S = X @ X.T
        lmin = np.linalg.eigvalsh(S)[0]
        # shift to put the smallest eigenvalue within a few ulps-of-norm of zero, either side
        shift = lmin - float(rng.choice([-1, 1])) * 10.0 ** rng.uniform(-15, -8) * np.linalg.norm(S)
        M = S - shift * np.eye(N)
        M = 0.5 * (M + M.T)
        proof = prove_pd(M)
        if proof.ok:
            proven += 1
            assert _exact_pd(M), "prove_pd accepted a matrix that is not positive definite"
    assert proven > 10  # the test must exercise the accepting branch too


def test_bounded_products_bound_the_true_error():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 7)) * 10.0 ** rng.uniform(-3, 3, size=(5, 7))
    B = rng.standard_normal((7, 4))
    C = rng.standard_normal((4, 4))
    res = (Bounded(A) @ Bounded(B)) @ Bounded(C) - Bounded(A) @ (Bounded(B) @ Bounded(C)) * 0.5
    exact = [[sum(Fraction(float(A[i, k])) * Fraction(float(B[k, l])) * Fraction(float(C[l, j]))
                  for k in range(7) for l in range(4)) * Fraction(1, 2) for j in range(4)] for i in range(5)]
    for i in range(5):
        for j in range(4):
            assert abs(Fraction(float(res.val[i, j])) - exact[i][j]) <= Fraction(float(res.err[i, j]))


def test_accurate_products_are_exact_where_claimed_and_bounded_under_cancellation():
    from rrnn_convex.rigorous import _split

    rng = np.random.default_rng(2)
    for k in (2, 9, 300):
        A = rng.standard_normal((3, k)) * 10.0 ** rng.uniform(-6, 6, size=(3, k))
        B = rng.standard_normal((k, 2)) * 10.0 ** rng.uniform(-6, 6, size=(k, 2))
        rho = int(np.ceil((53 + np.log2(max(k, 2))) / 2)) + 1
        A1, A2 = _split(A, 1, rho)
        B1, B2 = _split(B, 0, rho)
        assert np.array_equal(A1 + A2, A) and np.array_equal(B1 + B2, B)
        P = A1 @ B1
        for i in range(3):
            for j in range(2):
                exact = sum(Fraction(float(A1[i, t])) * Fraction(float(B1[t, j])) for t in range(k))
                assert Fraction(float(P[i, j])) == exact
    # a product that cancels: E' (Q E) with Q ~ E^-1 E^-T and E ill-conditioned
    X = rng.standard_normal((5, 5))
    E = X @ np.diag(10.0 ** np.linspace(0, 3, 5)) @ X.T
    Q = np.linalg.inv(E) @ np.linalg.inv(E).T * 1e3
    M = Bounded(E).T @ (Bounded(Q) @ Bounded(E))
    for i in range(5):
        for j in range(5):
            exact = sum(Fraction(float(E[a, i])) * Fraction(float(Q[a, b])) * Fraction(float(E[b, j]))
                        for a in range(5) for b in range(5))
            assert abs(Fraction(float(M.val[i, j])) - exact) <= Fraction(float(M.err[i, j]))
    classical = 6 * 2.0 ** -53 * (np.abs(E).T @ np.abs(Q) @ np.abs(E))
    assert M.err.max() < 0.1 * classical.max()  # the split makes the allowance much smaller
