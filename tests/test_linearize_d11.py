"""The linearisation, the casadi step and the adjoint of a model with an equilibrium weight D11
(issue 18) against finite differences of the model's own simulation."""
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex.adjoint import implicit_rnn_vjp
from rrnn_convex.linearize import ParamLayout, casadi_step, linearize

from conftest import random_rnn


def _d11_model(kind, activation="tanh", seed=1):
    """A random model with an acyclic (strictly lower-triangular after a permutation) or a
    general (cyclic, well-posed) D11."""
    rng = np.random.default_rng(seed)
    model = random_rnn(rng, 3, 4, 2, 2, activation=activation, E_far=True)
    if kind == "acyclic":
        perm = rng.permutation(4)
        D11 = np.tril(0.6 * rng.standard_normal((4, 4)), -1)[np.ix_(perm, perm)]
    else:
        D11 = 0.3 * rng.standard_normal((4, 4))
    out = replace(model, D11=D11)
    assert out.d11_kind == kind
    return out


def _check_against_fd(model, layout, rng, Bn=2, T=10, directions=3, eps=1e-6):
    """linearize's blocks against central differences of ``simulate``: J'J and J'r of the weights
    along random directions (``a' H b = (J a)' (J b)``, ``g' a = r' J a``; one pair of simulations
    per direction instead of per weight), the initial-state blocks in full."""
    u = rng.standard_normal((Bn, T, model.m))
    y = rng.standard_normal((Bn, T, model.p))
    x0 = rng.standard_normal((Bn, model.n))
    lin = linearize(model, u, y, x0, layout, chunk=4)
    theta = layout.flatten(model)

    def resid(th, x):
        return (layout.unflatten(th, model).simulate(u, x) - y).ravel()

    r = resid(theta, x0)
    A = rng.standard_normal((theta.size, directions))
    JA = np.stack([(resid(theta + eps * a, x0) - resid(theta - eps * a, x0)) / (2 * eps) for a in A.T], axis=1)
    Jx = np.empty((r.size, x0.size))
    for i in range(x0.size):
        e = np.zeros(x0.size)
        e[i] = eps
        Jx[:, i] = (resid(theta, x0 + e.reshape(x0.shape)) - resid(theta, x0 - e.reshape(x0.shape))) / (2 * eps)
    np.testing.assert_allclose(lin.residual.ravel(), r, atol=1e-12)
    scale = np.abs(JA.T @ JA).max()
    np.testing.assert_allclose(A.T @ lin.H @ A, JA.T @ JA, atol=1e-7 * scale)
    np.testing.assert_allclose(lin.g @ A, r @ JA, atol=1e-7 * np.abs(r @ JA).max())
    n = model.n
    for b in range(Bn):
        Jb = Jx[:, n * b:n * b + n]
        np.testing.assert_allclose(lin.Hx[b], Jb.T @ Jb, atol=1e-7 * np.abs(Jb.T @ Jb).max())
        np.testing.assert_allclose(lin.Hxt[b] @ A, Jb.T @ JA, atol=1e-7 * scale)
    return lin


@pytest.mark.parametrize("kind", ["acyclic", "general"])
@pytest.mark.parametrize("names", [None, ("E", "F", "B1", "C1", "D11", "D12", "bv", "C2", "D21")])
def test_d11_normal_equations_match_finite_differences(kind, names):
    """J through w = sigma(C1 x + D11 w + D12 u + bv): dw = (I - diag(sigma') D11)^-1 diag(sigma') dv0,
    with D11 fixed (names None) or trainable."""
    model = _d11_model(kind)
    layout = ParamLayout.for_model(model, names)
    assert ("D11" in layout.names) == (names is not None)
    _check_against_fd(model, layout, np.random.default_rng(2))


def test_d11_is_trainable_at_zero_and_the_default_layout_is_unchanged():
    """The default layout never holds D11 (old layouts and checkpoints unchanged); a layout that
    names it differentiates D11 at the zero model too (the fit's start); and a D11 layout reads and
    writes D11 row-major in the neuron group's place (after C1)."""
    rng = np.random.default_rng(3)
    model = random_rnn(rng, 3, 4, 2, 2, activation="tanh")
    assert "D11" not in ParamLayout.for_model(model).names
    layout = ParamLayout.for_model(model, ("D12", "D11", "C1", "C2"))
    assert layout.names == ("C1", "D11", "D12", "C2") and layout.shapes[1] == (4, 4)
    lin = _check_against_fd(model, layout, rng)
    assert np.abs(lin.g[layout.offsets()["D11"]]).max() > 1e-3  # D11 does move the outputs
    theta = layout.flatten(model)
    theta[layout.offsets()["D11"]] = np.tril(np.arange(1.0, 17.0).reshape(4, 4), -1).ravel() / 40
    moved = layout.unflatten(theta, model)
    assert moved.d11_kind == "acyclic" and moved.D11[3, 0] == 13 / 40
    with pytest.raises(ValueError, match="names: unknown weights"):
        ParamLayout.for_model(model, ("D13",))


def test_d11_linearisation_simulates_like_the_model():
    """The forward values are the model's own equilibrium: y_hat equals simulate."""
    model = _d11_model("general", activation="relu")
    rng = np.random.default_rng(4)
    u, x0 = rng.standard_normal((3, 30, 2)), rng.standard_normal((3, 3))
    lin = linearize(model, u, np.zeros((3, 30, 2)), x0, ParamLayout.for_model(model, ("D11", "by")))
    np.testing.assert_allclose(lin.y_hat, model.simulate(u, x0), rtol=0, atol=1e-12)


def test_casadi_step_with_an_acyclic_d11_equals_the_closed_form():
    """casadi's automatic differentiation of 2L sweeps w <- sigma(v0 + D11 w) (L levels) gives the
    same J'J as the closed form, D11 trainable; a general D11 is refused (no explicit formula)."""
    from rrnn_convex.baselines import casadi_linearize

    model = _d11_model("acyclic")
    layout = ParamLayout.for_model(model, ("E", "C1", "D11", "B1", "D21", "bv"))
    rng = np.random.default_rng(5)
    u, y, x0 = rng.standard_normal((2, 15, 2)), rng.standard_normal((2, 15, 2)), rng.standard_normal((2, 3))
    a = linearize(model, u, y, x0, layout)
    b = casadi_linearize(casadi_step(model, layout), layout.flatten(model), u, y, x0, chunk=5)
    np.testing.assert_allclose(b.y_hat, a.y_hat, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.H, a.H, rtol=0, atol=1e-12 * np.abs(a.H).max())
    np.testing.assert_allclose(b.g, a.g, rtol=0, atol=1e-12 * np.abs(a.g).max())
    with pytest.raises(ValueError, match=r"casadi_step supports a zero or acyclic D11 only .* general D11"):
        casadi_step(_d11_model("general"))


def test_an_acyclic_d11_over_several_blocks_of_time_steps_equals_casadi():
    """The same over 40 steps (blocks of BLOCK_STEPS steps joined up), D11 trainable."""
    from rrnn_convex.baselines import casadi_linearize
    model = _d11_model("acyclic")
    layout = ParamLayout.for_model(model, ParamLayout.for_model(model).names + ("D11",))
    rng = np.random.default_rng(12)
    u, y = rng.standard_normal((2, 40, 2)), rng.standard_normal((2, 40, 2))
    x0 = rng.standard_normal((2, 3))
    a = linearize(model, u, y, x0, layout)
    b = casadi_linearize(casadi_step(model, layout), layout.flatten(model), u, y, x0)
    for k in ("y_hat", "H", "g", "Hx", "Hxt", "gx"):
        ref = getattr(b, k)
        np.testing.assert_allclose(getattr(a, k), ref, rtol=0, atol=1e-11 * np.abs(ref).max(), err_msg=k)


@pytest.mark.parametrize("kind", ["acyclic", "general"])
def test_d11_adjoint_matches_finite_differences(kind):
    """J' g of the input-output map (the Lipschitz search's gradient) with D11:
    gv = diag(d) (I - D11' diag(d))^-1 gw."""
    model = _d11_model(kind)
    rng = np.random.default_rng(6)
    u, g, x0 = rng.standard_normal((2, 12, 2)), rng.standard_normal((2, 12, 2)), rng.standard_normal((2, 3))
    y, gu = implicit_rnn_vjp(model, u, g, x0)
    np.testing.assert_allclose(y, model.simulate(u, x0), atol=1e-12)
    eps = 1e-6
    for a in rng.standard_normal((3,) + u.shape):  # <J' g, a> = <g, J a>, along random directions
        fd = np.sum(g * (model.simulate(u + eps * a, x0) - model.simulate(u - eps * a, x0))) / (2 * eps)
        np.testing.assert_allclose(np.sum(gu * a), fd, rtol=1e-7, atol=1e-9)
