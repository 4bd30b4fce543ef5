"""io_models.from_ren: explicit REN weights -> ImplicitRNN, tested on a Lipschitz-bounded REN.

The REN is built here from a direct parameterisation of the Lipschitz-bounded REN of Revay,
Wang and Manchester ("Recurrent Equilibrium Networks", IEEE TAC 2023), (Q, S, R) =
(-1/gamma I, 0, gamma I), written for this test from the paper's construction (no code of the
JAX / Julia packages). In the paper's implicit form

    E x+ = F x + B1 w + B2 u,   Lambda v = C1 x + D11 w + D12 u,   y = C2 x + D21 w + D22 u,

with ``V(x) = x' E' P^-1 E x``, ``E' P^-1 E >= E + E' - P`` and ``W = 2 Lambda - D11 - D11'``,
the incremental gain-gamma dissipation inequality with the relu quadratic constraint follows
from (order x, w, x+)

    H := [[E + E' - P, -C1', F'], [-C1, W, B1'], [F, B1, P]]
       > (1/gamma) Cc' Cc + Psi' Rt^-1 Psi,

    Cc = [C2, D21, 0],  Psi = [-D22'C2/gamma, -D12' - D22'D21/gamma, B2'],
    Rt = gamma I - D22'D22/gamma > 0     (the Schur complement of the u block).

Direct parameterisation: free X, Y1, B2, C2, D12, D21 and D22 with ``|D22| < gamma`` (here D22
is drawn and scaled to norm gamma/2, a simpler choice than the paper's Cayley form of D22, so
the only deviation from the paper is how D22 is made to satisfy ``|D22| < gamma``);
``H = X'X + eps I + (1/gamma) Cc'Cc + Psi' Rt^-1 Psi``; then
``P = H33``, ``F = H31``, ``B1 = H32``, ``C1 = -H21``, ``E = (H11 + P + Y1 - Y1') / 2``,
``Lambda = diag(H22) / 2``, ``D11 = -tril(H22, -1)``. The explicit REN is
``A = E^-1 F``, ``B1 <- E^-1 B1``, ``B2 <- E^-1 B2``, ``C1, D11, D12 <- Lambda^-1 (.)``.
"""
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.io_models import from_ren

GAMMA = 5.0


def _lipschitz_ren(gamma=GAMMA, n=4, q=6, m=1, p=1, seed=0, eps=1e-3):
    """Explicit weights (dict) of a random Lipschitz-bounded REN, and the paper's Lambda."""
    rng = np.random.default_rng(seed)
    N = 2 * n + q
    X = rng.standard_normal((N, N)) / np.sqrt(N)
    Y1 = rng.standard_normal((n, n))
    B2 = rng.standard_normal((n, m))
    C2 = rng.standard_normal((p, n))
    D12 = rng.standard_normal((q, m))
    D21 = rng.standard_normal((p, q))
    D22 = rng.standard_normal((p, m))
    D22 *= 0.5 * gamma / np.linalg.norm(D22, 2)
    Cc = np.hstack([C2, D21, np.zeros((p, n))])
    Psi = np.hstack([-D22.T @ C2 / gamma, -D12.T - D22.T @ D21 / gamma, B2.T])
    Rt = gamma * np.eye(m) - D22.T @ D22 / gamma
    H = X.T @ X + eps * np.eye(N) + Cc.T @ Cc / gamma + Psi.T @ np.linalg.solve(Rt, Psi)
    H = 0.5 * (H + H.T)
    x, w, xp = slice(0, n), slice(n, n + q), slice(n + q, N)
    H11, H21, H22, H31, H32, H33 = H[x, x], H[w, x], H[w, w], H[xp, x], H[xp, w], H[xp, xp]
    P, F, B1, C1 = H33, H31, H32, -H21
    E = 0.5 * (H11 + P + Y1 - Y1.T)
    lam = 0.5 * np.diag(H22)
    D11 = -np.tril(H22, -1)
    Einv = np.linalg.inv(E)
    Li = np.diag(1.0 / lam)
    weights = dict(A=Einv @ F, B1=Einv @ B1, B2=Einv @ B2, C1=Li @ C1, C2=C2, D11=Li @ D11, D12=Li @ D12,
                   D21=D21, D22=D22, bx=0.1 * rng.standard_normal(n), bv=0.1 * rng.standard_normal(q),
                   by=0.1 * rng.standard_normal(p))
    implicit = dict(E=E, F=F, B1=B1, B2=B2, lam=lam)
    return weights, implicit


class _Simulator:
    """u (T, m) -> y (T, p) of an explicit REN with strictly lower-triangular D11 (relu), written
    here (not the package's), with its exact vector-Jacobian product."""

    def __init__(self, wts, T):
        self.w, self.T = wts, T
        self.m = wts["B2"].shape[1]
        self._cache = {}  # the last few runs (the ascent evaluates and differentiates each pair)

    def _run(self, u):
        u = np.ascontiguousarray(u, dtype=np.float64)
        key = (u.shape, u.tobytes())
        if key not in self._cache:
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._compute(u)
        return self._cache[key]

    def _compute(self, u):
        """Outputs and each step's relu slopes (0 or 1)."""
        W = self.w
        q, n = W["C1"].shape
        x = np.zeros(n)
        ys, slopes = [], []
        for ut in u:
            v = W["C1"] @ x + W["D12"] @ ut + W["bv"]
            wv = np.zeros(q)
            for i in range(q):
                v[i] += W["D11"][i, :i] @ wv[:i]
                wv[i] = max(v[i], 0.0)
            slopes.append((v > 0).astype(float))
            ys.append(W["C2"] @ x + W["D21"] @ wv + W["D22"] @ ut + W["by"])
            x = W["A"] @ x + W["B1"] @ wv + W["B2"] @ ut + W["bx"]
        return np.array(ys), slopes

    def __call__(self, u):
        return self._run(u)[0]

    def vjp(self, u, g):
        """Reverse mode: at step t, the adjoint of w solves (I - D11' Dl) gw = B1' lx + D21' g[t]
        (w = relu(v) with v reading w through D11), and gv = Dl gw."""
        W = self.w
        _, slopes = self._run(u)
        g = np.asarray(g, dtype=np.float64)
        q, n = W["C1"].shape
        lx = np.zeros(n)  # adjoint of x[t+1]
        out = np.zeros((len(slopes), self.m))
        for t in range(len(slopes) - 1, -1, -1):
            d = slopes[t]
            gw = np.linalg.solve(np.eye(q) - W["D11"].T * d[None, :], W["B1"].T @ lx + W["D21"].T @ g[t])
            gv = d * gw
            out[t] = W["B2"].T @ lx + W["D22"].T @ g[t] + W["D12"].T @ gv
            lx = W["A"].T @ lx + W["C2"].T @ g[t] + W["C1"].T @ gv
        return out


@pytest.fixture(scope="module")
def ren():
    weights, implicit = _lipschitz_ren()
    return weights, implicit, from_ren(**weights)


def test_from_ren_maps_the_explicit_weights(ren):
    weights, implicit, model = ren
    assert np.array_equal(model.E, np.eye(4)) and np.array_equal(model.F, weights["A"])
    for k in ("B1", "B2", "C1", "C2", "D11", "D12", "D21", "D22", "bx", "bv", "by"):
        assert np.array_equal(getattr(model, k), weights[k]), k
    assert (model.n, model.q, model.m, model.p) == (4, 6, 1, 1)
    # the implicit form (E, F, E B1, E B2) simulates the same
    E = implicit["E"]
    alt = from_ren(dict(weights, A=None, E=E, F=E @ weights["A"], B1=E @ weights["B1"], B2=E @ weights["B2"],
                        bx=E @ weights["bx"]))
    u = np.random.default_rng(1).standard_normal((30, 1))
    ya = model.simulate(u, np.zeros(4))
    yb = alt.simulate(u, np.zeros(4))
    ya = ya[0] if isinstance(ya, tuple) else ya
    yb = yb[0] if isinstance(yb, tuple) else yb
    assert np.allclose(np.asarray(ya), np.asarray(yb), atol=1e-9)
    # and equals the simulator written here
    sim = _Simulator(weights, 30)
    assert np.allclose(np.asarray(ya).reshape(30, 1), sim(u), atol=1e-12)


def test_from_ren_from_an_npz_file(ren, tmp_path):
    weights, _, model = ren
    path = tmp_path / "ren.npz"
    np.savez(path, activation="relu", **weights)
    loaded = from_ren(path)
    assert loaded == model


def test_from_ren_shape_errors_name_the_matrix_and_both_shapes(ren):
    weights, _, _ = ren
    bad = dict(weights, D11=np.zeros((6, 5)))
    with pytest.raises(ValueError, match=r"D11: has shape \(6, 5\), expected \(6, 6\)"):
        from_ren(bad)
    with pytest.raises(ValueError, match=r"C1: has shape \(4, 4\), expected \(6, 4\)"):
        from_ren(dict(weights, C1=np.zeros((4, 4))))
    with pytest.raises(ValueError, match=r"bv: has shape \(5,\), expected \(6,\)"):
        from_ren(dict(weights, bv=np.zeros(5)))
    with pytest.raises(ValueError, match="missing D12"):
        from_ren({k: v for k, v in weights.items() if k != "D12"})
    with pytest.raises(ValueError, match="not both"):
        from_ren(weights, F=np.eye(4))
    with pytest.raises(ValueError, match="unexpected keys"):
        from_ren(dict(weights, Q=np.eye(4)))
    with pytest.raises(TypeError):
        from_ren(3.0)


def test_lipschitz_ren_is_certified_below_its_bound(ren):
    from rrnn_convex.analysis import lipschitz_lower_bound

    weights, implicit, model = ren
    # well posed: D11 strictly lower triangular (explicit neuron order), and the paper's w-block
    # 2 Lambda - Lambda D11 - D11' Lambda (= W) is positive definite
    assert not np.any(np.triu(model.D11))
    assert np.abs(model.D11).max() > 0.05  # a real equilibrium term
    L = np.diag(implicit["lam"])
    assert np.linalg.eigvalsh(2 * L - L @ model.D11 - model.D11.T @ L)[0] > 0
    assert len(model.neuron_levels) > 1
    # the paper's bound is certified, and certify's optimum is no worse
    at = certify(model, gamma=GAMMA * (1 + 1e-6))
    assert at.certified and at.verify(model).ok, at.reason
    cert = certify(model)
    assert cert.certified and cert.verify(model).ok, cert.reason
    assert cert.gamma <= GAMMA * (1 + 1e-6)
    T = 60
    sim = _Simulator(weights, T)
    # the vjp is exact: compare with a directional finite difference (evidence only)
    rng = np.random.default_rng(2)
    u, du, g = rng.standard_normal((T, 1)), rng.standard_normal((T, 1)), rng.standard_normal((T, 1))
    h = 1e-6
    fd = np.sum(g * (sim(u + h * du) - sim(u - h * du))) / (2 * h)
    assert np.sum(sim.vjp(u, g) * du) == pytest.approx(fd, rel=1e-5, abs=1e-8)
    lb = lipschitz_lower_bound(sim, horizon=T, starts=2, steps=80, seed=0, m=1, vjp=sim.vjp)
    print(f"REN gamma bound {GAMMA}, certified {cert.gamma:.6g}, measured lower bound {lb.value:.6g}")
    assert 0.0 < lb.value <= cert.gamma
