"""Issue 18's acceptance test through torch: a two-layer relu torch.nn.RNN with a Linear readout,
imported by io_models.from_torch_rnn (block-lower-triangular D11), simulates like torch, and the
gamma of certify() equals an SDP written here in cvxpy on the stacked form (docs/design.md
sections 3.1 and 3.5 with the w-block 2L - L D11 - D11'L), with a measured Lipschitz lower bound
(torch autograd as the vjp) below it.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rrnn_convex import certify  # noqa: E402
from rrnn_convex.io_models import from_torch_rnn  # noqa: E402

H, LAYERS = 8, 2


def _net(seed=0):
    """The RNN and readout, recurrent weights scaled to spectral norm 0.6 (each layer contracts in
    its own state, so the cascade is contracting and gain-bounded), the inter-layer weight to 0.9,
    the input weight and the readout to 1 (a gain of order one instead of torch's small init)."""
    torch.manual_seed(seed)
    rnn = torch.nn.RNN(1, H, num_layers=LAYERS, nonlinearity="relu", batch_first=True, dtype=torch.float64)
    readout = torch.nn.Linear(H, 1, dtype=torch.float64)
    with torch.no_grad():
        for k in range(LAYERS):
            Whh = getattr(rnn, f"weight_hh_l{k}")
            Whh.mul_(0.6 / torch.linalg.matrix_norm(Whh, ord=2))
        Wih = rnn.weight_ih_l1
        Wih.mul_(0.9 / torch.linalg.matrix_norm(Wih, ord=2))
        rnn.weight_ih_l0.mul_(1.0 / torch.linalg.matrix_norm(rnn.weight_ih_l0, ord=2))
        readout.weight.mul_(1.0 / torch.linalg.matrix_norm(readout.weight, ord=2))
    return rnn, readout


def _sdp_gamma(rnn, readout) -> float:
    """min gamma s.t. the dissipation LMI of docs/design.md section 3.5 holds on the stacked form:

        [ diag(Q, 0, g I) + S - G'QG   Hy' ]
        [ Hy                           g I ]  > 0,   G = [F B1 B2],  Hy = [C2 D21 D22],

    S the relu S-procedure term -2 dw' L (dv - dw), dv = C1 dx + D11 dw + D12 du, whose w-block is
    2L - L D11 - D11'L. The stacked matrices are built here from torch's weights (x = previous
    hidden states of both layers, w = the new ones)."""
    import cvxpy as cp

    g_ = lambda t: t.detach().numpy().astype(np.float64)  # noqa: E731
    Whh = [g_(getattr(rnn, f"weight_hh_l{k}")) for k in range(LAYERS)]
    W1, W2 = g_(rnn.weight_ih_l0), g_(rnn.weight_ih_l1)
    Cy = g_(readout.weight)
    n = q = LAYERS * H
    m, p = 1, 1
    Z = np.zeros((H, H))
    C1 = np.block([[Whh[0], Z], [Z, Whh[1]]])
    D11 = np.block([[Z, Z], [W2, Z]])
    D12 = np.vstack([W1, np.zeros((H, m))])
    F, B1, B2 = np.zeros((n, n)), np.eye(n), np.zeros((n, m))
    C2, D21, D22 = np.zeros((p, n)), np.hstack([np.zeros((p, H)), Cy]), np.zeros((p, m))
    G = np.hstack([F, B1, B2])
    Hy = np.hstack([C2, D21, D22])
    N = n + q + m
    Q = cp.Variable((n, n), symmetric=True)
    lam = cp.Variable(q, nonneg=True)
    g = cp.Variable()
    L = cp.diag(lam)
    Zxu, Zxx, Zuu = np.zeros((n, m)), np.zeros((n, n)), np.zeros((m, m))
    Swx, Sww, Swu = -(L @ C1), 2 * L - L @ D11 - D11.T @ L, -(L @ D12)
    S = cp.bmat([[Zxx, Swx.T, Zxu], [Swx, Sww, Swu], [Zxu.T, Swu.T, Zuu]])
    top = cp.bmat([[Q, np.zeros((n, q)), Zxu], [np.zeros((q, n)), np.zeros((q, q)), np.zeros((q, m))],
                   [Zxu.T, np.zeros((m, q)), g * np.eye(m)]])
    M11 = top + S - G.T @ Q @ G
    M = cp.bmat([[M11, Hy.T], [Hy, g * np.eye(p)]])
    eps = 1e-9
    prob = cp.Problem(cp.Minimize(g), [0.5 * (M + M.T) >> eps * np.eye(N + p), Q >> eps * np.eye(n)])
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal", prob.status
    return float(g.value)


class _TorchSimulator:
    """u (T, 1) -> y (T, 1) of the torch network from zero hidden state; vjp by autograd (the graph
    of the last few evaluations is kept, as the ascent differentiates the pairs it just evaluated)."""

    def __init__(self, rnn, readout):
        self.rnn, self.readout, self.m = rnn, readout, 1
        self._graphs = {}

    def _forward(self, u):
        u = np.ascontiguousarray(u, dtype=np.float64)
        key = (u.shape, u.tobytes())
        if key not in self._graphs:
            if len(self._graphs) >= 8:
                self._graphs.pop(next(iter(self._graphs)))
            ut = torch.as_tensor(u.copy()).requires_grad_(True)
            out, _ = self.rnn(ut[None])
            self._graphs[key] = (ut, self.readout(out)[0])
        return self._graphs[key]

    def __call__(self, u):
        return self._forward(u)[1].detach().numpy().copy()

    def vjp(self, u, g):
        ut, y = self._forward(u)
        (grad,) = torch.autograd.grad(y, ut, torch.as_tensor(np.asarray(g, dtype=np.float64)), retain_graph=True)
        return grad.numpy().copy()


def test_two_layer_torch_rnn_certified_gamma_matches_an_independent_sdp():
    from rrnn_convex.analysis import lipschitz_lower_bound

    rnn, readout = _net()
    model = from_torch_rnn(rnn, readout=readout)
    assert (model.n, model.q, model.m, model.p) == (16, 16, 1, 1)
    assert model.D11 is not None and np.abs(model.D11).max() > 0
    # identical simulation, from a random initial hidden state too
    rng = np.random.default_rng(0)
    u = rng.standard_normal((3, 50, 1))
    h0 = 0.5 * rng.standard_normal((LAYERS, 3, H))
    with torch.no_grad():
        out, _ = rnn(torch.as_tensor(u), torch.as_tensor(h0))
        y_torch = readout(out).numpy()
    y = model.simulate(u, x0=h0.transpose(1, 0, 2).reshape(3, LAYERS * H))
    np.testing.assert_allclose(y, y_torch, rtol=0, atol=1e-12)

    cert = certify(model)
    assert cert.certified and cert.verify(model).ok, cert.reason
    ref = _sdp_gamma(rnn, readout)
    T = 30
    sim = _TorchSimulator(rnn, readout)
    lb = lipschitz_lower_bound(sim, horizon=T, starts=2, steps=60, seed=0, m=1, vjp=sim.vjp)
    print(f"certify gamma {cert.gamma:.8g}, independent SDP {ref:.8g}, measured lower bound {lb.value:.6g}")
    assert abs(cert.gamma - ref) <= 1e-3 * ref
    assert 0.0 < lb.value <= cert.gamma
