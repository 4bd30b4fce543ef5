"""The LMI with an equilibrium term D11 (issue 18): v = C1 x + D11 w + D12 u + bv.

Claims tested, each in a way that a wrong sign of a D11 block would fail:

* the S-procedure blocks equal the quadratic form ``-2 (dw - a dv)' L (b dv - dw)`` with
  ``dv = C1 dx + D11 dw + D12 du`` at random points (general slope bounds too);
* a certified (Q, Lambda, gamma) satisfies the dissipation inequality
  ``V(dx) - V(dx+) + gamma |du|^2 - |dy|^2 / gamma >= 0`` at every step of simulated trajectory
  pairs (a reference simulator written here, not the package's);
* gamma >= the H-infinity norm of every linearisation (neurons at slope 0 or 1, solved through
  ``(I - Delta D11)^-1``);
* the KYP path (frequency domain, Riccati metric) agrees with the exact SDP;
* a D11 whose w-block ``2L - L D11 - D11'L`` is indefinite for every diagonal L leaves the LMI
  infeasible, and a certificate of the same weights without D11 does not verify with it;
* D11 = 0 gives bit-identical matrices and certificates;
* two stacked Elman layers (strictly lower-triangular D11): the certified gamma equals an
  independent cvxpy SDP written on the stacked form, and a measured Lipschitz lower bound stays
  below it.
"""
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.lmi import dissipation_lmi, lifted_lmi, model_operands, sector_blocks

from conftest import random_rnn


# ---------------------------------------------------------------------- helpers (independent of the package)
def _with_d11(model, D11):
    return replace(model, D11=np.asarray(D11, dtype=np.float64))


def _neurons(model, x, u, D11, iters=400):
    """w = relu(C1 x + D11 w + D12 u + bv): neuron by neuron for a strictly lower-triangular D11,
    else by fixed-point iteration (D11 contractive in the 2-norm, so relu(. + D11 w) contracts)."""
    base = model.C1 @ x + model.D12 @ u + model.bv
    q = base.shape[0]
    if not np.any(np.triu(D11)):
        w = np.zeros(q)
        for i in range(q):
            w[i] = max(base[i] + D11[i, :i] @ w[:i], 0.0)
        return w
    assert np.linalg.norm(D11, 2) < 1.0
    w = np.zeros(q)
    for _ in range(iters):
        w_new = np.maximum(base + D11 @ w, 0.0)
        if np.max(np.abs(w_new - w)) <= 1e-15 * (1.0 + np.max(np.abs(w_new))):
            w = w_new
            break
        w = w_new
    assert np.max(np.abs(w - np.maximum(base + D11 @ w, 0.0))) < 1e-12 * (1.0 + np.abs(base).max())
    return w


def _simulate(model, u, x0, D11):
    """States, neuron outputs and outputs of E x+ = F x + B1 w + B2 u + bx, y = C2 x + D21 w + ..."""
    Einv = np.linalg.inv(model.E)
    x = np.array(x0, dtype=np.float64)
    xs, ys = [x], []
    for ut in u:
        w = _neurons(model, x, ut, D11)
        ys.append(model.C2 @ x + model.D21 @ w + model.D22 @ ut + model.by)
        x = Einv @ (model.F @ x + model.B1 @ w + model.B2 @ ut + model.bx)
        xs.append(x)
    return np.array(xs), np.array(ys)


def _linearised_hinf(model, D11, delta, grid=1500):
    """Lower bound (frequency grid) on the H-infinity norm of the model with w = delta v."""
    Dl = np.diag(delta)
    K = np.linalg.solve(np.eye(model.q) - Dl @ D11, Dl @ np.hstack([model.C1, model.D12]))
    Kx, Ku = K[:, :model.n], K[:, model.n:]
    Einv = np.linalg.inv(model.E)
    A = Einv @ (model.F + model.B1 @ Kx)
    B = Einv @ (model.B2 + model.B1 @ Ku)
    C = model.C2 + model.D21 @ Kx
    D = model.D22 + model.D21 @ Ku
    if np.max(np.abs(np.linalg.eigvals(A))) >= 1.0:
        return np.inf
    n = A.shape[0]
    return max(np.linalg.svd(C @ np.linalg.solve(np.exp(1j * w) * np.eye(n) - A, B) + D, compute_uv=False)[0]
               for w in np.linspace(0.0, np.pi, grid))


def _d11_model(seed=3, diag=0.6):
    """A random contracting model (n=3, q=4, m=2, p=2) with a full, well-posed D11."""
    rng = np.random.default_rng(seed)
    base = random_rnn(rng, 3, 4, 2, 2, scale=0.5)
    X = rng.standard_normal((4, 4))
    D11 = diag * np.eye(4) + 0.15 * X / np.linalg.norm(X, 2)
    return base, D11


# ---------------------------------------------------------------------- the blocks themselves
@pytest.mark.parametrize("alpha,beta", [(0.0, 1.0), (0.1, 1.0), (-0.5, 0.25)])
def test_sector_blocks_are_the_quadratic_constraint_with_d11(alpha, beta):
    """z'Sz = -2 (dw - a dv)' L (b dv - dw), dv = C1 dx + D11 dw + D12 du, at random points."""
    rng = np.random.default_rng(0)
    n, q, m = 3, 4, 2
    C1, D11, D12 = rng.standard_normal((q, n)), rng.standard_normal((q, q)), rng.standard_normal((q, m))
    lam = rng.uniform(0.1, 2.0, q)
    L = np.diag(lam)
    S = sector_blocks(L, L @ C1, L @ D12, C1, D12, alpha, beta, "numpy", LD11=L @ D11, D11=D11)
    blocks = [[S.get((i, j)) if i <= j else (None if S.get((j, i)) is None else S[(j, i)].T)
               for j in range(3)] for i in range(3)]
    sizes = [n, q, m]
    M = np.block([[np.zeros((sizes[i], sizes[j])) if blocks[i][j] is None else blocks[i][j]
                   for j in range(3)] for i in range(3)])
    for _ in range(20):
        dx, dw, du = rng.standard_normal(n), rng.standard_normal(q), rng.standard_normal(m)
        dv = C1 @ dx + D11 @ dw + D12 @ du
        direct = -2.0 * (dw - alpha * dv) @ L @ (beta * dv - dw)
        z = np.concatenate([dx, dw, du])
        assert z @ M @ z == pytest.approx(direct, rel=1e-10, abs=1e-10)


def test_zero_or_absent_d11_gives_bit_identical_matrices():
    """LD11 = 0 adds exact zeros; a model whose D11 is zero has the operands of one without it."""
    rng = np.random.default_rng(1)
    model = random_rnn(rng, 3, 4, 2, 2)
    Q, lam = np.eye(3), rng.uniform(0.5, 1.5, 4)
    ops = model_operands(model, Q, lam)
    M0 = dissipation_lmi(**ops, gamma=2.0)
    M1 = dissipation_lmi(**ops, gamma=2.0, LD11=np.zeros((4, 4)), D11=np.zeros((4, 4)))
    assert np.array_equal(M0, M1)
    zero = _with_d11(model, np.zeros((4, 4)))
    assert "LD11" not in model_operands(zero, Q, lam)
    assert np.array_equal(dissipation_lmi(**model_operands(zero, Q, lam), gamma=2.0), M0)
    Mb0 = dissipation_lmi(**model_operands(model, Q, lam, bounded=True), gamma=2.0)
    Mb1 = dissipation_lmi(**model_operands(zero, Q, lam, bounded=True), gamma=2.0)
    assert np.array_equal(Mb0.val, Mb1.val) and np.array_equal(Mb0.err, Mb1.err)
    Lam = np.diag(lam)
    kw = dict(E=np.eye(3), F=model.F, B1=model.B1, P=np.eye(3), Lam=Lam, LC1=Lam @ model.C1,
              alpha=0.0, beta=1.0)
    assert np.array_equal(lifted_lmi(**kw), lifted_lmi(**kw, LD11=np.zeros((4, 4))))


def test_zero_d11_reproduces_todays_certificate_exactly():
    rng = np.random.default_rng(2)
    model = random_rnn(rng, 3, 3, 1, 1)
    a, b = certify(model), certify(_with_d11(model, np.zeros((3, 3))))
    assert a.certified and b.certified
    assert a.gamma == b.gamma and np.array_equal(a.Q, b.Q) and np.array_equal(a.lam, b.lam)


def test_w_block_indefinite_for_every_diagonal_multiplier_makes_the_lmi_infeasible():
    """D11 with a diagonal entry > 1: (2L - L D11 - D11'L)_11 = 2 l_1 (1 - d_11) <= 0 for every L
    >= 0, so no (Q, Lambda, gamma) makes the LMI > 0. (With the sign of the D11 term flipped it
    would be 2 l_1 (1 + d_11) > 0: the check below would then find feasible points.)"""
    rng = np.random.default_rng(4)
    model = random_rnn(rng, 3, 3, 1, 1)
    D11 = np.array([[1.5, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, -0.2, 0.0]])
    for _ in range(50):
        lam = rng.uniform(0.0, 3.0, 3)
        X = rng.standard_normal((3, 3))
        Q = X @ X.T + 0.1 * np.eye(3)
        Lam = np.diag(lam)
        for gamma in (None, 1e3):
            ops = model_operands(model, Q, lam)
            M = dissipation_lmi(**ops, gamma=gamma, LD11=Lam @ D11, D11=D11)
            assert np.linalg.eigvalsh(0.5 * (M + M.T))[0] <= 1e-12
        w_block = 2 * Lam - Lam @ D11 - D11.T @ Lam
        assert np.linalg.eigvalsh(w_block)[0] <= 0.0


# ---------------------------------------------------------------------- certification
@pytest.fixture(scope="module")
def certified_d11():
    base, D11 = _d11_model()
    model = _with_d11(base, D11)
    cert = certify(model)
    assert cert.certified and cert.gamma is not None, cert.reason
    return base, D11, model, cert


def test_certificate_of_a_d11_model_verifies_and_bounds_every_linearisation(certified_d11):
    base, D11, model, cert = certified_d11
    assert cert.verify(model).ok
    worst = 0.0
    for bits in range(2 ** model.q):
        delta = np.array([(bits >> i) & 1 for i in range(model.q)], dtype=float)
        worst = max(worst, _linearised_hinf(model, D11, delta))
    assert worst < cert.gamma
    # D11's diagonal 0.6 amplifies the all-active linearisation by ~1/(1 - 0.6): without it the
    # bound is much smaller, so a certificate ignoring D11 (or with its sign flipped) would fail
    assert worst > 1.5 * _linearised_hinf(base, np.zeros((4, 4)), np.ones(4))


def test_dissipation_inequality_holds_along_simulated_trajectory_pairs(certified_d11):
    """V(dx) - V(dx+) + gamma |du|^2 - |dy|^2 / gamma >= 0 at every step (two inputs, two starts)."""
    _, D11, model, cert = certified_d11
    rng = np.random.default_rng(5)
    g, QE = cert.gamma, model.E.T @ cert.Q @ model.E
    worst = np.inf
    for trial in range(6):
        T = 80
        u1 = rng.standard_normal((T, model.m)) * rng.uniform(0.5, 4.0)
        u2 = u1 + rng.standard_normal((T, model.m)) * rng.uniform(0.01, 2.0)
        x0 = rng.standard_normal(model.n)
        x1, y1 = _simulate(model, u1, x0, D11)
        x2, y2 = _simulate(model, u2, x0 + (trial % 2) * rng.standard_normal(model.n), D11)
        dx, dy, du = x1 - x2, y1 - y2, u1 - u2
        V = np.einsum("ti,ij,tj->t", dx, QE, dx)
        lhs = V[:-1] - V[1:] + g * np.sum(du ** 2, axis=1) - np.sum(dy ** 2, axis=1) / g
        scale = V[:-1] + g * np.sum(du ** 2, axis=1)
        worst = min(worst, float(np.min(lhs / scale)))
    assert worst >= -1e-9
    # and the package's own simulator agrees with the reference one
    u = rng.standard_normal((30, model.m))
    _, y_ref = _simulate(model, u, np.zeros(model.n), D11)
    assert np.allclose(model.simulate(u), y_ref, atol=1e-10)


def test_certificate_without_d11_does_not_verify_for_the_model_with_it(certified_d11):
    base, D11, model, _ = certified_d11
    plain = certify(base)
    assert plain.certified
    forged = replace(plain, model_hash=model.weights_hash())
    check = forged.verify(model)
    assert not check.ok and "LMI" in check.reason


def test_kyp_path_with_d11_agrees_with_the_exact_sdp(certified_d11):
    """The KYP path reads D11's blocks off the same builder; without the exact fallback its
    verified gamma is within its rtol (1e-3) above the exact SDP's."""
    _, _, model, cert = certified_d11
    stacked, _ = _stacked_elman()
    for m, exact in ((model, cert), (stacked, certify(stacked))):
        kyp = certify(m, formulation="kyp", fallback=False)
        assert kyp.certified and kyp.formulation == "kyp" and kyp.verify(m).ok, kyp.reason
        assert exact.gamma * (1 - 1e-6) <= kyp.gamma <= exact.gamma * (1 + 2e-3)


def test_lifted_formulation_agrees_with_dense_for_d11(certified_d11):
    _, _, model, cert = certified_d11
    lifted = certify(model, formulation="lifted")
    assert lifted.certified and lifted.verify(model).ok
    assert lifted.gamma == pytest.approx(cert.gamma, rel=1e-4)


# ---------------------------------------------------------------------- two stacked Elman layers
def _stacked_elman(seed=7):
    """h1+ = relu(W1 h1 + U1 u + b1), h2+ = relu(W2 h2 + U2 h1+ + b2), y = Cy h2+ + Dy u as an
    ImplicitRNN with x = (h1, h2), w = (h1+, h2+): F = 0, B1 = I, D11 = [[0, 0], [U2, 0]]."""
    rng = np.random.default_rng(seed)
    h, m, p = 2, 1, 1
    W1, W2 = rng.standard_normal((h, h)), rng.standard_normal((h, h))
    W1 *= 0.5 / np.linalg.norm(W1, 2)
    W2 *= 0.4 / np.linalg.norm(W2, 2)
    U1, U2 = rng.standard_normal((h, m)), 0.8 * rng.standard_normal((h, h))
    Cy, Dy = rng.standard_normal((p, h)), 0.1 * rng.standard_normal((p, m))
    Z = np.zeros((h, h))
    parts = dict(W1=W1, W2=W2, U1=U1, U2=U2, Cy=Cy, Dy=Dy)
    model = ImplicitRNN(F=np.zeros((2 * h, 2 * h)), B1=np.eye(2 * h), B2=np.zeros((2 * h, m)),
                        C1=np.block([[W1, Z], [Z, W2]]), D12=np.vstack([U1, np.zeros((h, m))]),
                        C2=np.zeros((p, 2 * h)), D21=np.hstack([np.zeros((p, h)), Cy]), D22=Dy,
                        bv=rng.standard_normal(2 * h) * 0.1, D11=np.block([[Z, Z], [U2, Z]]))
    return model, parts


def _stacked_sdp_gamma(parts) -> float:
    """min gamma of the incremental dissipation inequality, written directly on the stacked form:
    z = (h1, h2, w1, w2, u); quadratic constraint of each layer on its own (w, v)."""
    import cvxpy as cp

    W1, W2, U1, U2, Cy, Dy = (parts[k] for k in ("W1", "W2", "U1", "U2", "Cy", "Dy"))
    h, m, p = W1.shape[0], U1.shape[1], Cy.shape[0]
    n, N = 2 * h, 4 * h + m
    I, Z = np.eye(h), np.zeros((h, h))
    sel = lambda k, size: np.eye(N)[k:k + size]  # noqa: E731
    Sh1, Sh2, Sw1, Sw2, Su = sel(0, h), sel(h, h), sel(2 * h, h), sel(3 * h, h), sel(4 * h, m)
    V1 = W1 @ Sh1 + U1 @ Su  # dv of layer 1
    V2 = W2 @ Sh2 + U2 @ Sw1  # dv of layer 2 (reads layer 1's new output)
    Xnext = np.vstack([Sw1, Sw2])  # the new state is the neurons' output
    Xnow = np.vstack([Sh1, Sh2])
    Y = Cy @ Sw2 + Dy @ Su
    P = cp.Variable((n, n), symmetric=True)
    l1, l2 = cp.Variable(h, nonneg=True), cp.Variable(h, nonneg=True)
    g = cp.Variable()
    # relu: (dw - 0 dv)' L (dv - dw) >= 0 per layer; the S-procedure subtracts twice it
    iqc = 0
    for lv, Sw, V in ((l1, Sw1, V1), (l2, Sw2, V2)):
        cross = Sw.T @ cp.diag(lv) @ (V - Sw)
        iqc = iqc + cross + cross.T
    Mzz = Xnow.T @ P @ Xnow - Xnext.T @ P @ Xnext + g * (Su.T @ Su) - iqc
    big = cp.bmat([[Mzz, Y.T], [Y, g * np.eye(p)]])
    eps = 1e-9
    prob = cp.Problem(cp.Minimize(g), [0.5 * (big + big.T) >> eps * np.eye(N + p), P >> eps * np.eye(n)])
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    del I
    return float(g.value)


def _casadi_simulator(model, T):
    """u (T, m) -> y (T, p) of the stacked model, neuron by neuron; numpy or casadi MX input."""
    import casadi as ca

    D11 = model.D11

    def sim(u):
        numeric = not isinstance(u, (ca.MX, ca.SX))
        U = ca.DM(np.asarray(u, dtype=np.float64)) if numeric else u
        x = ca.DM.zeros(model.n)
        rows = []
        for t in range(T):
            ut = U[t, :].T
            w = []
            for i in range(model.q):
                v = ca.mtimes(ca.DM(model.C1[i:i + 1]), x) + ca.mtimes(ca.DM(model.D12[i:i + 1]), ut) + model.bv[i]
                for j in range(i):
                    if D11[i, j] != 0.0:
                        v = v + D11[i, j] * w[j]
                w.append(ca.fmax(v, 0))
            wv = ca.vertcat(*w)
            y = ca.mtimes(ca.DM(model.C2), x) + ca.mtimes(ca.DM(model.D21), wv) + ca.mtimes(ca.DM(model.D22), ut)
            rows.append(y.T)
            x = ca.mtimes(ca.DM(model.F), x) + ca.mtimes(ca.DM(model.B1), wv) + ca.mtimes(ca.DM(model.B2), ut)
        Y = ca.vertcat(*rows)
        return np.array(Y, dtype=np.float64).reshape(T, model.p) if numeric else Y

    sim.m = model.m
    return sim


def test_stacked_elman_layers_gamma_matches_an_independent_sdp_and_bounds_the_measured_gain():
    from rrnn_convex.analysis import lipschitz_lower_bound

    model, parts = _stacked_elman()
    cert = certify(model)
    assert cert.certified and cert.verify(model).ok, cert.reason
    ref = _stacked_sdp_gamma(parts)
    assert abs(cert.gamma - ref) <= 1e-3 * ref
    T = 40
    sim = _casadi_simulator(model, T)
    u = np.random.default_rng(0).standard_normal((T, model.m))
    xs, y_ref = _simulate(model, u, np.zeros(model.n), model.D11)
    assert np.allclose(sim(u), y_ref, atol=1e-12)
    lb = lipschitz_lower_bound(sim, horizon=T, starts=2, steps=60, seed=0, m=model.m)
    assert 0.0 < lb.value <= cert.gamma


# ---------------------------------------------------------------------- the convex sets and projection
def test_theta_gamma_with_free_dt11_gives_models_certified_at_the_sets_gamma():
    """GainBounded(free_C1, equilibrium=True): the variables Ct, Dt, Dt11 = Lambda D11; the model
    recovered with D11 = Lambda^-1 Dt11 certifies at the set's gamma (a wrong sign in the set
    would let a too small gamma through)."""
    import cvxpy as cp

    from rrnn_convex.sets import GainBounded

    base, D11_0 = _d11_model()
    fixed = {k: getattr(base, k) for k in ("E", "F", "B1", "B2", "C2", "D21", "D22")}
    sv = GainBounded(parametrization="free_C1", equilibrium=True).build(base.dims, base.activation, fixed=fixed)
    Lam, g = cp.diag(sv.cert["lam"]), sv.cert["gamma"]
    pull = (cp.sum_squares(sv.extra["Dt11"] - Lam @ D11_0) + cp.sum_squares(sv.extra["Ct"] - Lam @ base.C1)
            + cp.sum_squares(sv.extra["Dt"] - Lam @ base.D12))
    prob = cp.Problem(cp.Minimize(g + 10.0 * pull), sv.constraints + [cp.sum(sv.cert["lam"]) == base.q])
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    model = sv.to_model(base.activation)
    assert np.abs(model.D11).max() > 0.3  # a substantial equilibrium term
    gamma = float(g.value)
    cert = certify(model, gamma=gamma * (1 + 1e-6))
    assert cert.certified and cert.verify(model).ok, cert.reason
    best = certify(model)
    assert best.gamma <= gamma * (1 + 1e-6)
    # independent of lmi.py: the set's gamma bounds every linearisation's H-infinity norm
    worst = max(_linearised_hinf(model, model.D11, np.array([(b >> i) & 1 for i in range(model.q)], float))
                for b in range(2 ** model.q))
    assert worst < gamma
    # the w-block the set imposed proves the equilibrium well-posed with this Lambda
    L = np.diag(np.asarray(sv.cert["lam"].value))
    assert np.linalg.eigvalsh(2 * L - L @ model.D11 - model.D11.T @ L)[0] > 0


def test_fixed_d11_in_the_sets_and_fixed_c1_needs_it_fixed():
    from rrnn_convex.sets import Contracting, GainBounded

    base, D11 = _d11_model()
    model = _with_d11(base, D11)
    assert Contracting().lifted_point(model) is not None
    with pytest.raises(ValueError, match="free_C1"):
        GainBounded(equilibrium=True).build(base.dims, base.activation, fixed={"C1": base.C1, "D12": base.D12})
    with pytest.raises(ValueError, match="D11"):
        Contracting().build(base.dims, base.activation, fixed={"C1": base.C1, "D12": base.D12,
                                                                "D11": np.zeros((2, 2))})
    sv = Contracting().build(base.dims, base.activation, fixed={"C1": base.C1, "D12": base.D12, "D11": D11})
    assert np.array_equal(sv.extra["D11"], D11)


def test_project_keeps_d11_and_certifies_the_projection(certified_d11):
    from rrnn_convex.project import project
    from rrnn_convex.sets import CIRNNSet

    _, D11, model, cert = certified_d11
    target = 0.7 * cert.gamma
    out = project(model, gamma=target)
    assert out.moved and np.array_equal(out.model.D11, D11)
    assert out.certificate.certified and out.certificate.gamma <= target
    assert out.certificate.verify(out.model).ok
    with pytest.raises(ValueError, match="equilibrium"):
        project(model, target=CIRNNSet())


def test_elman_like_sets_do_not_contain_a_model_with_d11():
    from rrnn_convex.sets import ElmanSet, SRNNSet

    model, _ = _stacked_elman()
    plain = replace(model, D11=np.zeros((model.q, model.q)))
    for s in (SRNNSet(), ElmanSet()):
        assert "D11" in s.structure_differences(model)
        assert "D11" not in s.structure_differences(plain)
    assert SRNNSet().membership(model) is None


def test_contraction_with_d11_and_the_linearisation_evidence():
    from rrnn_convex.certificate import linearised_radius

    base, D11 = _d11_model()
    good = _with_d11(base, D11)
    c = certify(good, contraction_only=True)
    assert c.certified and c.gamma is None and c.verify(good).ok
    # D11 = 0.95 I amplifies the all-active loop twentyfold: the linearisation at slope 1 is
    # A + B1 (I - D11)^-1 C1 (computed here independently), with spectral radius > 1
    bad = _with_d11(base, 0.95 * np.eye(base.q))
    A1 = base.F + base.B1 @ np.linalg.solve(np.eye(base.q) - 0.95 * np.eye(base.q), base.C1)
    rho = float(np.max(np.abs(np.linalg.eigvals(A1))))
    assert rho > 1.0
    assert linearised_radius(bad) == pytest.approx((rho, 1.0), rel=1e-12)
    out = certify(bad, contraction_only=True)
    assert not out.certified and out.reason.startswith("not contracting")


def test_d11_with_a_general_e_and_another_representation():
    """E != I: the exact SDP works in explicit coordinates, where D11 is unchanged; the gamma of
    the same model in another representation (S E, S F, S B1, ...) is the same."""
    rng = np.random.default_rng(11)
    base = random_rnn(rng, 3, 3, 1, 1, scale=0.5, E_far=True)
    X = rng.standard_normal((3, 3))
    model = _with_d11(base, 0.5 * np.eye(3) + 0.2 * X / np.linalg.norm(X, 2))
    a = certify(model)
    S = rng.standard_normal((3, 3)) + 4 * np.eye(3)
    other = model.transform(S)
    assert np.array_equal(other.D11, model.D11)
    b = certify(other)
    assert a.certified and b.certified and a.verify(model).ok and b.verify(other).ok
    assert b.gamma == pytest.approx(a.gamma, rel=1e-4)
