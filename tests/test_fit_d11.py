"""The fit with a trainable equilibrium weight D11 (issue 18): ``RobustRNNRegressor(equilibrium=True)``
trains D11 through the set's convex variable Dt11 = Lambda D11, with every accepted iterate certified."""
import time

import cvxpy as cp
import numpy as np
import pytest

from rrnn_convex import solvers as _solvers
from rrnn_convex.analysis import lipschitz_lower_bound
from rrnn_convex.fit import RobustRNNRegressor, _Run
from rrnn_convex.sets import ModelSet

from conftest import teacher_sequences

GAMMA = 3.0


@pytest.fixture(scope="module")
def data():
    return teacher_sequences(0, 3, 60)


def _estimator(**kw):
    return RobustRNNRegressor(3, 4, **({"model_set": "theta_gamma", "gamma": GAMMA, "equilibrium": True,
                                         "max_iter": 2, "progress": False, "seed": 1} | kw))


@pytest.fixture(scope="module")
def fitted(data):
    u, y = data
    est = _estimator()
    init = est.initial_model(u, y)
    assert init.d11_kind == "zero"  # the usual start, D11 = 0, is in the equilibrium set
    return est.fit(u, y, init_model=init), init


def test_fit_with_d11_is_certified_and_lowers_the_loss(data, fitted):
    u, y = data
    est, init = fitted
    model, cert = est.model_, est.certificate_
    assert model.d11_kind == "general" and np.abs(model.D11).max() > 1e-3  # D11 was trained
    assert cert.certified and cert.verify(model).ok and cert.gamma <= GAMMA
    h = est.history_
    assert all(e["accepted"] for e in h) and all(e["certificate_from"] for e in h)
    assert all(b["loss"] < a["loss"] for a, b in zip(h, h[1:]))
    sc = est.scaling_

    def loss(m, x0=None):
        return float(np.sum((sc.normalize_outputs(m.simulate(u, x0)) - sc.normalize_outputs(y)) ** 2))

    assert h[-1]["loss"] < 0.9 * loss(init)  # the start (zero initial states)
    # the fitted model (physical units) simulates the fit's own predictions: its last loss
    np.testing.assert_allclose(loss(model, est.x0_), h[-1]["loss"], rtol=1e-9)
    np.testing.assert_array_equal(est.simulate(u), model.simulate(u))
    # measured incremental gain below the certified one (the adjoint with D11 gives the gradient)
    lb = lipschitz_lower_bound(model, horizon=20, starts=2, steps=15, seed=0)
    assert 0 < lb.value <= cert.gamma


@pytest.mark.slow  # two more fits (~5 s)
def test_resumed_d11_fit_equals_the_uninterrupted_one(data, fitted, tmp_path):
    """The checkpoint keeps D11 (and the multiplier that proves it well posed); resuming ends
    where the uninterrupted fit ends. A checkpoint of a D11 fit refuses a fit without D11."""
    u, y = data
    full, _ = fitted
    ckpt = tmp_path / "d11.ckpt.npz"
    init = full.initial_model(u, y)
    _estimator(max_iter=1, checkpoint=ckpt).fit(u, y, init_model=init)
    resumed = _estimator().fit(u, y, resume=ckpt)
    assert len(resumed.history_) == len(full.history_)
    assert resumed.model_.d11_kind == "general"
    for k, v in full.model_.weights().items():
        np.testing.assert_allclose(getattr(resumed.model_, k), v, rtol=1e-9, atol=1e-12, err_msg=k)
    with pytest.raises(ValueError, match=r"equilibrium \(checkpoint True, this fit None\)"):
        _estimator(equilibrium=False).fit(u, y, resume=ckpt)


@pytest.mark.slow  # three step problems and two iterations (~5 s)
def test_the_d11_step_problem_contains_the_current_iterate(data):
    """With d = 0 imposed, the step problem (Dt11 = Lambda D11 among its variables, the trainer's
    margin) is feasible at the start and after accepted steps that made D11 nonzero."""
    u, y = data
    est = _estimator()
    sc = est._scaling(u, y)
    run = _Run(est, est._set(sc), sc, est._windows(u.shape[0], u.shape[1]), u, y, None, 0, 2, time.perf_counter())
    run.prepare(None, None)
    assert "Dt11" in run.step.sv.extra and "D11" in run.step.layout.names
    for it in range(3):
        model = run.state.model
        run.set_margin(model)
        step = run.step
        theta_k = step.layout.flatten(model)
        step.theta_k.value = theta_k
        pinned = cp.Problem(cp.Minimize(0), step.problem.constraints + [step.theta == theta_k])
        att = _solvers.run(pinned, "CLARABEL")
        assert att.status == "optimal", (it, att)
        if it < 2:
            run.iterate()
    assert sum(h["accepted"] for h in run.state.history) >= 1 and run.state.model.d11_kind == "general"


def test_equilibrium_option_errors(data):
    u, y = data
    for kw, msg in [({"model_set": "srnn", "gamma": None}, "equilibrium: a trainable D11 needs model_set 'theta' "
                                                          "or 'theta_gamma', got model_set 'srnn'"),
                    ({"parametrization": "fixed_C1"}, "equilibrium: a trainable D11 needs parametrization='free_C1'"),
                    ({"equilibrium": "yes"}, "equilibrium: expected True or False, got 'yes'")]:
        with pytest.raises(ValueError, match=msg):
            _estimator(**kw).fit(u, y)
    est = _estimator()
    assert est._set().equilibrium is True and _estimator(equilibrium=False)._set().equilibrium is False
    assert ModelSet.from_name("theta", equilibrium=True).equilibrium is True
    assert est.get_params()["equilibrium"] is True
    assert est.set_params(equilibrium=False).equilibrium is False
