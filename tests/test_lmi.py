"""The two forms of the LMI in lmi.py agree, and their signs match the H-infinity norm."""
import numpy as np
import pytest

from rrnn_convex.lmi import dissipation_lmi, lifted_lmi, model_operands

from conftest import hinf_norm, lti_model, random_rnn, random_stable_lti


def _lifted_at(model, Q, lam, gamma):
    """DESIGN.md's fixed-weight substitution E -> Qx, F -> Qx A, ..., P -> Qx (Qx = E'QE)."""
    ex = model.explicit()
    Qx = model.E.T @ Q @ model.E
    Lam = np.diag(lam)
    return lifted_lmi(E=Qx, F=Qx @ ex.F, B1=Qx @ ex.B1, B2=Qx @ ex.B2, P=Qx, Lam=Lam, LC1=Lam @ model.C1,
                      LD12=Lam @ model.D12, C1=model.C1, D12=model.D12, C2=model.C2, D21=model.D21,
                      D22=model.D22, gamma=gamma, alpha=model.activation.alpha, beta=model.activation.beta)


def test_lifted_and_dissipation_forms_have_the_same_sign():
    """Both forms at points around a certificate (some feasible, some not) agree on the sign."""
    from rrnn_convex import certify

    rng = np.random.default_rng(0)
    agree = {True: 0, False: 0}
    for trial in range(12):
        model = random_rnn(rng, 3, 2, 1, 1, activation=["relu", "tanh", "sigmoid"][trial % 3], E_far=True)
        cert = certify(model)
        for _ in range(20):
            X = rng.standard_normal((3, 3)) * 0.05 * np.linalg.norm(cert.Q)
            Q = cert.Q + 0.5 * (X + X.T) * rng.choice([0.0, 1.0])
            lam = cert.lam * rng.uniform(0.7, 1.3, size=2)
            gamma = cert.gamma * rng.uniform(0.9, 1.1)
            a = np.linalg.eigvalsh(_lifted_at(model, Q, lam, gamma))[0] > 0
            b = np.linalg.eigvalsh(dissipation_lmi(**model_operands(model, Q, lam), gamma=gamma))[0] > 0
            if np.linalg.eigvalsh(Q)[0] > 0:
                assert a == b
                agree[a] += 1
    assert agree[True] > 5 and agree[False] > 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounded_real_lemma_sign_against_hinf_norm(seed):
    """For a linear model the gain LMI with the Riccati-optimal metric is feasible just above the
    H-infinity norm and infeasible for every metric below it (checked via the dense form)."""
    rng = np.random.default_rng(seed)
    A, B, C, D = random_stable_lti(rng, 3, 1, 1, 0.8)
    h = hinf_norm(A, B, C, D)
    model = lti_model(A, B, C, D)
    from rrnn_convex import certify

    cert = certify(model, gamma=1.001 * h)
    assert cert.certified
    M = dissipation_lmi(**model_operands(model, cert.Q, cert.lam), gamma=0.999 * h)
    assert np.linalg.eigvalsh(M)[0] < 0
