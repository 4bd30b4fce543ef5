"""Fitting measured data (issue 14): scaling inside the estimator, a start that works on offset,
badly scaled data, a trainer that never gives up while budget remains and says why it stopped,
training windows and validation from estimated initial states."""
from __future__ import annotations

import re
import time
import warnings

import cvxpy as cp
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex import solvers as _solvers
from rrnn_convex.analysis import lipschitz_lower_bound
from rrnn_convex.fit import STOP_REASONS, RobustRNNRegressor, Windows, _Run
from rrnn_convex.init import (_lti_response, excitation_ratio, linear_start, n4sid_models, pad_states,
                              whitened_coordinates)
from rrnn_convex.linearize import linearize
from rrnn_convex.metrics import nse

from conftest import hinf_norm, random_rnn, random_stable_lti


# ------------------------------------------------------------------------------ data
def teacher_and_data(seed=0, n_seq=4, T=200, scale=0.8):
    """A contracting relu teacher driven by unit-scale inputs: (teacher, u, y, validation (u, y))."""
    rng = np.random.default_rng(seed)
    teacher = random_rnn(rng, 3, 4, 1, 1, activation="relu", scale=scale)
    u = rng.uniform(-2, 2, (n_seq, T, 1))
    y = teacher.simulate(u, rng.standard_normal((n_seq, 3))) + 0.01 * rng.standard_normal((n_seq, T, 1))
    uv = rng.uniform(-2, 2, (1, 400, 1))
    return teacher, u, y, (uv, teacher.simulate(uv))


# Odd physical units: y around 100 with spread 0.01, u around -5 with spread 1e3
U_OFF, U_SC, Y_OFF, Y_SC = -5.0, 1e3, 100.0, 0.01


def to_raw(u, y):
    return U_OFF + U_SC * u, Y_OFF + Y_SC * y


# ------------------------------------------------------------------------------ scaling
@pytest.fixture(scope="module")
def odd_and_normal_fits():
    _, u, y, (uv, yv) = teacher_and_data()
    kw = dict(max_iter=12, progress=False, seed=1)
    raw = RobustRNNRegressor(3, 4, **kw).fit(*to_raw(u, y), validation=to_raw(uv, yv))
    normal = RobustRNNRegressor(3, 4, **kw).fit(u, y, validation=(uv, yv))
    return raw, normal, (uv, yv)


def test_raw_units_fit_as_well_as_prenormalised_data(odd_and_normal_fits):
    raw, normal, (uv, yv) = odd_and_normal_fits
    uvr, yvr = to_raw(uv, yv)
    v_raw = float(np.mean(nse(raw.model_.simulate(uvr), yvr)))
    v_norm = float(np.mean(nse(normal.model_.simulate(uv), yv)))
    start = min(h["val_nse"] for h in normal.history_[:1])
    assert v_norm < 0.8 * start  # the fit did something
    assert v_raw == pytest.approx(v_norm, rel=0.10)


def test_raw_units_certificate_verifies_and_bounds_the_measured_gain(odd_and_normal_fits):
    raw, _, _ = odd_and_normal_fits
    cert = raw.certificate_
    assert cert.contracting and cert.gamma is not None and cert.verify(raw.model_)
    # the model is in physical units: its outputs sit at the offset
    y = raw.model_.simulate(U_OFF + U_SC * np.zeros((300, 1)))
    assert abs(float(np.mean(y[100:])) - Y_OFF) < 0.1
    lb = lipschitz_lower_bound(raw.model_, horizon=150, starts=2, steps=60, seed=0, scale=U_SC).value
    assert 0.0 < lb <= cert.gamma
    # the physical gain is about Y_SC / U_SC times the normalised one, far below 1
    assert cert.gamma < 1e-3


def test_gamma_is_physical_in_theta_gamma():
    """Theta_gamma's gamma bounds the gain of the returned (physical) model, whatever the scaling."""
    _, u, y, _ = teacher_and_data()
    ur, yr = to_raw(u, y)
    gamma = 3e-5  # physical units: y per u; the data's gain is about 0.01 / 1e3 * (a few)
    est = RobustRNNRegressor(3, 4, model_set="theta_gamma", gamma=gamma, max_iter=3, progress=False).fit(ur, yr)
    cert = est.certificate_
    assert cert.certified and cert.gamma == gamma and cert.verify(est.model_)
    lb = lipschitz_lower_bound(est.model_, horizon=150, starts=2, steps=60, seed=0, scale=U_SC).value
    assert lb <= gamma


# ------------------------------------------------------------------------------ the start
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_whitened_coordinates_give_unit_state_covariance_and_keep_the_system(seed):
    rng = np.random.default_rng(seed)
    A, B, C, D = random_stable_lti(rng, 4, 1, 2, 0.98)
    S = np.diag(10.0 ** rng.uniform(-4, 4, 4))  # a badly scaled basis, like N4SID's on raw data
    A, B, C = S @ A @ np.linalg.inv(S), S @ B, C @ np.linalg.inv(S)
    x0 = rng.standard_normal((2, 4))
    u = rng.standard_normal((2, 400, 1))
    Az, Bz, Cz, x0z, L = whitened_coordinates(A, B, C, x0, u)
    xs = _lti_response(Az, Bz, np.eye(4), np.zeros((4, 1)), u, x0z).reshape(-1, 4)
    np.testing.assert_allclose(xs.T @ xs / xs.shape[0], np.eye(4), atol=1e-8)
    np.testing.assert_allclose(_lti_response(Az, Bz, Cz, D, u, x0z), _lti_response(A, B, C, D, u, x0), atol=1e-8)
    assert hinf_norm(Az, Bz, Cz, D) == pytest.approx(hinf_norm(A, B, C, D), rel=1e-8)
    # and the Lyapunov embedding of the whitened system is well conditioned (it was 1e12 before)
    assert np.linalg.cond(linear_model_in_theta(Az, Bz, Cz, D).E) < 1e4


def linear_model_in_theta(A, B, C, D):
    from rrnn_convex.init import from_lti
    return from_lti(A, B, C, D)[0]


def test_an_order_the_data_do_not_identify_is_refused():
    rng = np.random.default_rng(9)
    A = np.diag([0.9, 0.5])
    u = rng.standard_normal((1, 200, 1))
    # the second state is never driven, or not seen at the output: either way unidentifiable
    assert excitation_ratio(A, np.array([[1.0], [0.0]]), np.ones((1, 2)), np.zeros((1, 2)), u) < 1e-12
    assert excitation_ratio(A, np.ones((2, 1)), np.array([[1.0, 0.0]]), np.zeros((1, 2)), u) < 1e-12
    S = np.diag([1e-4, 1e4])  # but a merely badly scaled basis is fine
    r = excitation_ratio(S @ A @ np.linalg.inv(S), S @ np.ones((2, 1)), np.ones((1, 2)) @ np.linalg.inv(S),
                         np.zeros((1, 2)), u)
    assert r == pytest.approx(excitation_ratio(A, np.ones((2, 1)), np.ones((1, 2)), np.zeros((1, 2)), u), rel=1e-6)
    assert r > 1e-3
    with pytest.raises(ValueError, match="leave some states of this order-2 model constant"):
        whitened_coordinates(A, np.array([[1.0], [0.0]]), np.ones((1, 2)), np.zeros((1, 2)), u)


def test_padding_keeps_the_input_output_behaviour():
    rng = np.random.default_rng(3)
    A, B, C, D = random_stable_lti(rng, 2, 1, 1, 0.9)
    Ap, Bp, Cp, x0 = pad_states(A, B, C, 6, np.ones((1, 2)))
    assert Ap.shape == (6, 6) and np.max(np.abs(np.linalg.eigvals(Ap))) < 1.0 and x0.shape == (1, 6)
    u = rng.standard_normal((1, 100, 1))
    np.testing.assert_allclose(_lti_response(Ap, Bp, Cp, D, u, x0), _lti_response(A, B, C, D, u, np.ones((1, 2))),
                               atol=1e-12)
    assert np.all(np.abs(Bp[2:]) > 0)  # the filters are driven by the input: the fit can use them


def test_linear_start_picks_the_true_order_and_recovers_initial_states():
    rng = np.random.default_rng(4)
    A, B, C, D = random_stable_lti(rng, 2, 1, 1, 0.9)
    u = rng.standard_normal((3, 400, 1))
    x0 = 3 * rng.standard_normal((3, 2))
    y = _lti_response(A, B, C, D, u, x0) + 1e-3 * rng.standard_normal((3, 400, 1))
    st = linear_start(u, y, 5)
    assert st.order >= 2 and st.scores[2] < 0.1 * st.scores[1]
    # the chosen model with its initial states reproduces the data (noise level)
    err = _lti_response(st.A, st.B, st.C, st.D, u, st.x0) - y
    assert np.sqrt(np.mean(err ** 2)) < 5e-3
    assert st.A.shape == (5, 5) and np.max(np.abs(np.linalg.eigvals(st.A))) < 1.0


def test_n4sid_initial_states_explain_the_start_of_each_sequence():
    rng = np.random.default_rng(5)
    A, B, C, D = random_stable_lti(rng, 3, 1, 1, 0.95)
    u = rng.standard_normal((2, 300, 1))
    x0 = 5 * rng.standard_normal((2, 3))
    y = _lti_response(A, B, C, D, u, x0)
    A2, B2, C2, D2, x02 = n4sid_models(u, y, [3])[0]
    np.testing.assert_allclose(_lti_response(A2, B2, C2, D2, u, x02), y, atol=1e-6)


# ------------------------------------------------------------------------------ the trainer
def test_the_step_problem_contains_the_current_iterate():
    """With d = 0 imposed, the step problem (with the trainer's margin) is feasible, at the start
    and after accepted steps."""
    _, u, y, val = teacher_and_data()
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=4)
    sc = est._scaling(*map(np.asarray, (u, y)))
    ms = est._set(sc)
    run = _Run(est, ms, sc, est._windows(u.shape[0], u.shape[1]), u, y, None, 0, 4, time.perf_counter())
    run.prepare(None, None)
    checked = 0
    for it in range(4):
        model = run.state.model
        run.set_margin(model)
        step = run.step
        theta_k = step.layout.flatten(model)
        step.theta_k.value = theta_k  # the step d = theta - theta_k is a variable of the problem
        pinned = cp.Problem(cp.Minimize(0), step.problem.constraints + [step.theta == theta_k])
        att = _solvers.run(pinned, "CLARABEL")
        assert att.status == "optimal", (it, att)
        checked += 1
        run.iterate()
    assert checked == 4 and sum(h["accepted"] for h in run.state.history) >= 2


def _step_at_start(**kw):
    """(run, model, step, lin, theta_k): a fit's set-up at its start, linearised there."""
    _, u, y, val = teacher_and_data()
    est = RobustRNNRegressor(3, 4, progress=False, **kw)
    sc = est._scaling(u, y)
    run = _Run(est, est._set(sc), sc, est._windows(u.shape[0], u.shape[1]), u, y, None, 0, 1, time.perf_counter())
    run.prepare(None, None)
    model, step = run.state.model, run.step
    run.set_margin(model)
    lin = linearize(model, run.UW, run.YW, run.state.x0, step.layout)
    return run, model, step, lin, step.layout.flatten(model)


def test_an_interior_step_is_the_step_problems_solution():
    """When the unconstrained damped step stays in the set, the shortcut (one small SDP for the
    certificate variables) returns what the step SDP returns."""
    run, model, step, lin, theta_k = _step_at_start(mu0=10.0)  # heavy damping: a short, interior step
    Hr, gr = lin.reduced(10.0, 10.0, marquardt=True)
    free = theta_k - np.linalg.solve(Hr, gr)
    cand, point = run.interior_step(free)
    assert cand is not None and point["lam"].min() > 0
    Rm = np.linalg.cholesky(Hr).T
    step.set_objective(Rm, np.linalg.solve(Rm.T, gr), theta_k)
    step.set_point(model, run.state.point["lam"], prox=0.0)
    assert step.solve("CLARABEL").status == "optimal"
    np.testing.assert_allclose(step.layout.flatten(step.model_at_solution(model)), free, rtol=1e-5, atol=1e-6)


def test_quadratic_and_residual_forms_of_the_step_agree():
    """The step handed to the solver as d'Hd + 2g'd (H added to cvxpy's data) solves the same
    problem as sum_squares(R theta + c): same optimal value of ||R d + c||^2, both in the set."""
    run, model, step, lin, theta_k = _step_at_start()
    sc = run.scaling
    Hr, gr = lin.reduced(1e-6, 1e-6, marquardt=True)  # light damping: the constraint is active
    Rm = np.linalg.cholesky(Hr).T
    c = np.linalg.solve(Rm.T, gr)
    step.set_objective(Rm, c, theta_k)
    step.set_point(model, run.state.point["lam"], prox=0.0)

    def value(theta):
        r = Rm @ (theta - theta_k) + c
        return float(r @ r)

    assert step.solve("CLARABEL").status == "optimal"
    quad = step.layout.flatten(step.model_at_solution(model))
    problem, R, cc = step.residual_problem()
    R.value, cc.value = Rm, c - Rm @ theta_k
    assert _solvers.run(problem, "CLARABEL").status == "optimal"
    resid = step.layout.flatten(step.model_at_solution(model))
    unconstrained = value(theta_k - np.linalg.solve(Hr, gr))
    assert value(quad) > unconstrained + 1e-6 * abs(unconstrained)  # the LMI is active: a real test
    assert value(quad) == pytest.approx(value(resid), rel=1e-4, abs=1e-6)
    for theta in (quad, resid):
        assert certify(sc.to_physical(step.layout.unflatten(theta, model)), contraction_only=True).certified


def test_the_step_settings_reach_the_accurate_solvers_optimum():
    """The step's Clarabel settings (solvers.STEP_OPTIONS: one thread) find the
    optimum the default settings (SOLVER_OPTIONS alone) find, on a step whose LMI is active."""
    run, model, step, lin, theta_k = _step_at_start()
    Hr, gr = lin.reduced(1e-6, 1e-6, marquardt=True)
    Rm = np.linalg.cholesky(Hr).T
    c = np.linalg.solve(Rm.T, gr)
    w = 1.0 / np.linalg.norm(c)  # an objective of order one, as the fit scales it
    Rm, c = w * Rm, w * c
    step.set_objective(Rm, c, theta_k)
    step.set_point(model, run.state.point["lam"], prox=0.0)

    def value(theta):
        r = Rm @ (theta - theta_k) + c
        return float(r @ r)

    assert step.solve("CLARABEL").status == "optimal"  # with the step settings
    fast = step.layout.flatten(step.model_at_solution(model))
    att = _solvers.run(step.problem, "CLARABEL", quadratic=(step.d, step.H), warm_start=False)  # defaults
    assert att.status == "optimal"
    accurate = step.layout.flatten(step.model_at_solution(model))
    unconstrained = value(theta_k - np.linalg.solve(Hr, gr))
    assert value(accurate) > unconstrained + 1e-6 * abs(unconstrained)  # the LMI is active
    # the values, not the weights: with light damping the optimum is flat in some directions
    assert value(fast) == pytest.approx(value(accurate), rel=1e-6, abs=1e-10)
    assert certify(run.scaling.to_physical(step.layout.unflatten(fast, model)), contraction_only=True).certified


def test_iterates_are_certified_by_the_step_point_and_the_certificate_is_true():
    """Each accepted iterate records what certified it; the step's own point does it in the
    normal case, and the certificate returned verifies against the returned weights."""
    _, u, y, val = teacher_and_data()
    est = RobustRNNRegressor(3, 4, max_iter=4, progress=False).fit(u, y)
    sources = [h["certificate_from"] for h in est.history_ if h["accepted"]]
    assert sources and set(sources) <= {"step point", "certify"} and "step point" in sources
    assert all(h["certificate_from"] == "" for h in est.history_ if not h["accepted"])
    assert est.certificate_.verify(est.model_).ok
    assert all(k in est.history_[0] for k in ("seconds_linearize", "seconds_step", "seconds_certificate"))


def test_a_solver_without_quadratic_objectives_gets_the_residual_form(monkeypatch):
    _, u, y, val = teacher_and_data()
    calls = []

    def refuse(problem, solver, x, H, **opts):
        calls.append(solver)
        raise cp.error.SolverError(f"{solver} takes no quadratic objective through cvxpy")

    monkeypatch.setattr(_solvers, "solve_with_quadratic", refuse)
    monkeypatch.setattr(_Run, "interior_step", lambda self, theta: (None, None))
    est = RobustRNNRegressor(3, 4, max_iter=3, progress=False).fit(u, y)
    assert calls and sum(h["accepted"] for h in est.history_) >= 1
    assert est.certificate_.verify(est.model_).ok


def _failing_runs(monkeypatch, fail):
    """Make the step's solver calls fail when ``fail(call_index)`` is true (other solves unchanged);
    every step goes through the step SDP (no interior shortcut)."""
    monkeypatch.setattr(_Run, "interior_step", lambda self, theta: (None, None))
    calls = {"n": 0}
    real = _solvers.run

    def run(problem, solver, **kw):
        if any(v.name() == "theta_k" for v in problem.parameters()):
            calls["n"] += 1
            if fail(calls["n"]):
                return _solvers.Attempt(solver, "solver_error", 0.0, "injected")
        return real(problem, solver, **kw)

    monkeypatch.setattr(_solvers, "run", run)
    return calls


def test_an_injected_solver_failure_is_a_rejected_step_not_a_stop(monkeypatch):
    _, u, y, val = teacher_and_data()
    calls = _failing_runs(monkeypatch, lambda k: k in (1, 2, 5))
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=5).fit(u, y, validation=val)
    assert calls["n"] >= 5
    infos = [h["info"] for h in est.history_]
    assert est.history_[0]["accepted"]  # the iteration went on after two failed solves
    assert est.n_iter_ == 5 and est.stop_reason_ == "max_iter"
    assert sum(h["accepted"] for h in est.history_) >= 3
    assert est.certificate_.verify(est.model_)
    assert not any("solver_error" in i for i in infos if i)  # the failures were retried within iterations


def test_a_step_problem_that_always_fails_stops_with_a_reason_and_a_warning(monkeypatch):
    _, u, y, val = teacher_and_data()
    _failing_runs(monkeypatch, lambda k: True)
    with pytest.warns(RuntimeWarning, match="step problem kept failing"):
        est = RobustRNNRegressor(3, 4, progress=False, max_iter=30).fit(u, y, validation=val)
    assert est.stop_reason_ == "step_failures" and "solver_error" in est.stop_detail_
    assert est.n_iter_ < 30 and not any(h["accepted"] for h in est.history_)
    assert est.certificate_.verify(est.model_)  # the (certified) start is returned


def test_stop_reasons_are_recorded():
    _, u, y, val = teacher_and_data()
    a = RobustRNNRegressor(3, 4, progress=False, max_iter=2).fit(u, y, validation=val)
    assert (a.stop_reason_, a.n_iter_) == ("max_iter", 2)
    b = RobustRNNRegressor(3, 4, progress=False, max_iter=30, patience=1).fit(u, y, validation=val)
    assert b.stop_reason_ in ("patience", "converged") and b.stop_reason_ in STOP_REASONS
    if b.stop_reason_ == "patience":
        assert b.history_[-1]["accepted"]
    # tol: the loss falls by less than half per iteration over 10 iterations: converged after 11
    c = RobustRNNRegressor(3, 4, progress=False, max_iter=30, tol=0.5).fit(u, y)
    assert (c.stop_reason_, c.n_iter_) == ("converged", 11) and "per iteration over the last 10" in c.stop_detail_


def test_no_descent_at_any_damping_is_convergence(monkeypatch):
    """When no damped step lowers the loss (here: every candidate's loss is made infinite), mu
    grows past its cap and the fit ends as converged, with the start returned."""
    _, u, y, val = teacher_and_data()
    monkeypatch.setattr(_Run, "loss", lambda self, model, x0, idx: np.inf)
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=40).fit(u, y)
    assert est.stop_reason_ == "converged" and "no step decreases the loss" in est.stop_detail_
    assert est.n_iter_ < 40


def test_time_budget_is_checked_inside_an_iteration(monkeypatch):
    _, u, y, val = teacher_and_data()
    real = _solvers.run

    def slow(problem, solver, **kw):
        if any(v.name() == "theta_k" for v in problem.parameters()):
            time.sleep(0.6)
            return _solvers.Attempt(solver, "solver_error", 0.6, "injected slow failure")
        return real(problem, solver, **kw)

    monkeypatch.setattr(_solvers, "run", slow)
    monkeypatch.setattr(_Run, "interior_step", lambda self, theta: (None, None))
    est = RobustRNNRegressor(3, 4, progress=False, time_budget=2.0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est.fit(u, y)
    # 8 failing attempts of one iteration would take 4.8 s: the budget cut the iteration short
    assert est.stop_reason_ == "time_budget" and "inside iteration" in est.stop_detail_
    assert est.history_[0]["seconds"] < 4.0
    assert time.perf_counter() - t0 < 2.0 + 15.0  # set-up + final certificate, not 8 slow attempts


def test_restarts_continue_the_best_start():
    _, u, y, val = teacher_and_data()
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=6, restarts=3, restart_iter=2).fit(u, y, validation=val)
    r = est.restarts_
    assert [e["seed"] for e in r] == [0, 1, 2] and all(e["iterations"] == 2 for e in r)
    assert all(e["scored_by"] == "validation NSE" for e in r)
    chosen = [e for e in r if e["chosen"]]
    assert len(chosen) == 1 and chosen[0]["score"] == min(e["score"] for e in r)
    assert est.start_["seed"] == chosen[0]["seed"] and est.n_iter_ == 6  # its 2 iterations + 4 more
    # the chosen start, fitted alone with its seed, goes through the same first iterations
    alone = RobustRNNRegressor(3, 4, progress=False, max_iter=2, seed=chosen[0]["seed"]).fit(u, y, validation=val)
    assert [h["loss"] for h in alone.history_] == pytest.approx([h["loss"] for h in est.history_[:2]], rel=1e-9)
    assert est.certificate_.verify(est.model_)
    with pytest.raises(ValueError, match="restarts: expected a positive integer"):
        RobustRNNRegressor(restarts=0).fit(u, y)


def test_whole_restarts_return_the_best_finished_fit_as_it_ended(tmp_path):
    """``restart_iter=None``: each start is fitted to its own stop, the result is the start
    with the best validation NSE exactly as its own fit ended (not continued), and that fit is
    the fit of its seed alone."""
    _, u, y, val = teacher_and_data()
    ck = tmp_path / "fit.npz"
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=4, patience=50, restarts=3, restart_iter=None,
                             checkpoint=ck).fit(u, y, validation=val)
    r = est.restarts_
    assert [e["seed"] for e in r] == [0, 1, 2] and all(e["iterations"] == 4 for e in r)
    assert all(e["stop_reason"] == "max_iter" for e in r)
    chosen = [e for e in r if e["chosen"]]
    assert len(chosen) == 1 and chosen[0]["score"] == min(e["score"] for e in r)
    assert est.n_iter_ == 4 and est.stop_reason_ == "max_iter"  # not continued past its own stop
    alone = RobustRNNRegressor(3, 4, progress=False, max_iter=4, patience=50, seed=chosen[0]["seed"]).fit(
        u, y, validation=val)
    assert [h["loss"] for h in alone.history_] == pytest.approx([h["loss"] for h in est.history_], rel=1e-9)
    np.testing.assert_allclose(est.model_.F, alone.model_.F, rtol=1e-9, atol=1e-12)
    assert chosen[0]["model"] == est.model_ and all(e["model"].n == 3 for e in r)
    assert nse(est.simulate(*val[:1]), val[1]) == pytest.approx(chosen[0]["score"], rel=1e-6)
    assert est.certificate_.verify(est.model_)
    assert ck.exists()  # the chosen fit's end is checkpointed


def test_whole_restarts_share_what_is_left_of_the_time_budget(monkeypatch):
    """Each start gets what is left of the budget divided by the starts still to run; a start
    whose share ran out says so in its stop reason."""
    _, u, y, val = teacher_and_data()
    real_iterate, calls = _Run.iterate, []

    def slow_iterate(self):
        calls.append(self.seed)
        time.sleep(0.4)
        return real_iterate(self)

    monkeypatch.setattr(_Run, "iterate", slow_iterate)
    est = RobustRNNRegressor(3, 4, progress=False, time_budget=6.0, patience=50, restarts=2,
                             restart_iter=None).fit(u, y, validation=val)
    r = est.restarts_
    assert len(r) == 2 and all(e["stop_reason"] == "time_budget" for e in r)
    assert set(calls) == {0, 1} and calls.index(1) > 0  # both ran, one after the other
    # neither start took the whole budget: each stopped near its share (about 3 s each, less set-up)
    assert all(e["seconds"] < 6.0 for e in r)
    assert "share" in r[0]["stop_detail"]  # the last start's share is what is left: the fit's own deadline


@pytest.mark.parametrize("value, low, ok", [(3, 1, True), (np.int64(3), 1, True), (3.0, 1, True), (2, 2, True),
                                            (1, 2, False), (0, 1, False), (2.5, 1, False), (True, 1, False),
                                            (np.bool_(True), 1, False), ("3", 1, False), (None, 1, False),
                                            (float("inf"), 1, False), (float("nan"), 1, False)])
def test_integer_settings_are_checked_by_one_helper(value, low, ok):
    from rrnn_convex._validation import check_integer
    if ok:
        assert check_integer(value, "k", low=low) == int(value) and type(check_integer(value, "k", low=low)) is int
    else:
        with pytest.raises(ValueError, match=rf"^k: expected (a positive integer|an integer of at least {low}), "
                                             rf"got {re.escape(repr(value))}$"):
            check_integer(value, "k", low=low)


def test_path_iter_and_window_stride_errors_name_them():
    u, y = np.zeros((2, 50, 1)), np.zeros((2, 50, 1))
    with pytest.raises(ValueError, match=r"path_iter: expected a positive integer, got 'x'"):
        RobustRNNRegressor(model_set="theta_gamma", gamma=2.0, gamma_path=(5.0,), path_iter="x").fit(u, y)
    with pytest.raises(ValueError, match=r"window_stride: expected a positive integer, got 2.5"):
        RobustRNNRegressor(window=10, window_stride=2.5)._windows(1, 100)


@pytest.mark.parametrize("bad", [0, 2.5, "10", True])
def test_restart_iter_must_be_a_positive_integer_or_none(bad):
    _, u, y, _ = teacher_and_data()
    with pytest.raises(ValueError, match=r"restart_iter: expected a positive integer or None .*got"):
        RobustRNNRegressor(3, 4, restarts=2, restart_iter=bad).fit(u, y)


def test_max_iter_none_means_no_cap_with_a_time_budget():
    assert RobustRNNRegressor(time_budget=10)._iteration_cap() is None
    assert RobustRNNRegressor()._iteration_cap() == 50
    assert RobustRNNRegressor(max_iter=7, time_budget=10)._iteration_cap() == 7
    with pytest.raises(ValueError, match="max_iter: expected a non-negative integer"):
        RobustRNNRegressor(max_iter=2.5)._iteration_cap()


# ------------------------------------------------------------------------------ windows
def test_windows_cover_the_record_and_start_from_the_simulated_state():
    W = Windows.cut(2, 1000, 300, 200)
    assert W.count == 2 * 5 and W.length == 300
    assert set(W.starts.tolist()) == {0, 200, 400, 600, 700}  # the last window ends at T
    X = np.arange(2 * 1000, dtype=float).reshape(2, 1000, 1)
    taken = W.take(X)
    assert taken.shape == (10, 300, 1) and taken[6, 0, 0] == 1000 + 200
    model = random_rnn(np.random.default_rng(0), 3, 2, 1, 1)
    U = np.random.default_rng(1).standard_normal((2, 1000, 1))
    x0 = W.states(model, U, np.ones((2, 3)))
    _, xs = model.simulate(U, np.ones((2, 3)), return_states=True)
    np.testing.assert_array_equal(x0[6], xs[1, 200])
    np.testing.assert_array_equal(x0[9], xs[1, 700])
    whole = Windows.cut(2, 1000, None, None)
    assert whole.whole(1000) and whole.count == 2
    with pytest.raises(ValueError, match="window: expected an integer of at least 2"):
        RobustRNNRegressor(window=1)._windows(1, 100)
    with pytest.raises(ValueError, match="window_stride: expected a positive integer"):
        RobustRNNRegressor(window=10, window_stride=0)._windows(1, 100)


def test_a_long_record_is_trained_in_windows_with_their_own_initial_states():
    teacher, _, _, _ = teacher_and_data()
    rng = np.random.default_rng(7)
    u = rng.uniform(-2, 2, (1, 6000, 1))
    y = teacher.simulate(u, rng.standard_normal(3)) + 0.01 * rng.standard_normal((1, 6000, 1))
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=3).fit(u, y)  # window="auto": 6000 > 5000
    W = est.windows_
    assert W.length == 2048 and W.count == 5 and est.x0_.shape == (5, est.model_.n)
    assert sum(h["accepted"] for h in est.history_) >= 2
    # each window's learned initial state explains its window better than the zero state
    yw = W.take(y)
    err = lambda x0: float(np.sum((est.model_.simulate(W.take(u), x0) - yw)[:, :50] ** 2))  # noqa: E731
    assert err(est.x0_) < err(np.zeros_like(est.x0_))


def test_validation_cut_from_a_record_uses_an_estimated_initial_state():
    """A validation window cut from the middle of a record starts far from zero: with
    init_samples the validation NSE measures the model, not the transient."""
    rng = np.random.default_rng(8)
    # a slowly forgetting teacher (poles 0.95, 0.9, 0.6): the start state matters for ~50 samples
    teacher = ImplicitRNN(F=np.diag([0.95, 0.9, 0.6]), B1=0.02 * rng.standard_normal((3, 4)),
                          B2=np.array([[0.3], [0.2], [0.5]]), C1=rng.standard_normal((4, 3)),
                          C2=np.array([[1.0, 1.0, 0.5]]), activation="relu")
    u = rng.uniform(-2, 2, (4, 300, 1))
    y = teacher.simulate(u) + 0.01 * rng.standard_normal((4, 300, 1))
    ur = rng.uniform(-2, 2, (1, 700, 1))
    ur[:, :400] += 4.0  # the validation window starts from the state of another operating point
    yr = teacher.simulate(ur)
    val = (ur[:, 400:], yr[:, 400:])
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=2, init_samples=20).fit(u, y, validation=val)
    zero = float(np.mean(nse(est.model_.simulate(val[0]), val[1], init=20)))
    estimated = float(np.mean(nse(est.model_.simulate(val[0], y_init=val[1], init_samples=20), val[1], init=20)))
    assert estimated < 0.9 * zero
    # the trainer's validation score is that number (computed on its normalised model and data)
    run = _Run(est, est._set(est.scaling_), est.scaling_, est.windows_, u, y, val, 20, 2, time.perf_counter())
    assert run.val_nse(est.scaling_.to_normalized(est.model_)) == pytest.approx(estimated, rel=1e-6)
    with pytest.raises(ValueError, match="init_samples: expected fewer than the validation length"):
        RobustRNNRegressor(3, 4, progress=False, max_iter=1, init_samples=300).fit(u, y, validation=val)


def test_fitted_model_file_records_the_scaling(tmp_path):
    _, u, y, _ = teacher_and_data()
    ur, yr = to_raw(u, y)
    est = RobustRNNRegressor(3, 4, progress=False, max_iter=1).fit(ur, yr)
    path = est.save(tmp_path / "m.npz", meta={"inputs": ["force"], "outputs": ["position"]})
    meta = ImplicitRNN.read_meta(path)
    assert meta["inputs"] == ["force"] and meta["outputs"] == ["position"]
    assert meta["scaling"]["u_mean"][0] == pytest.approx(float(np.mean(ur)))
    assert meta["scaling"]["y_scale"][0] == pytest.approx(float(np.std(yr)))
    assert certify(ImplicitRNN.load(path), contraction_only=True).certified


# ------------------------------------------------------------------------------ measured data
SYSID = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "sysid"


@pytest.mark.data
@pytest.mark.skipif(not (SYSID / "cascaded_tanks").is_dir(), reason=f"benchmark data not found at {SYSID}")
@pytest.mark.parametrize("normalize", [True, False])
def test_the_start_works_on_raw_cascaded_tanks_data(normalize):
    """The issue's failing case: RobustRNNRegressor(8, 16).initial_model on the raw record raised
    'E: must be invertible ... condition number 1.38e+12'. Now the start is certified, well
    conditioned, and simulates no worse than the mean output (it did at 11,730 V RMSE)."""
    from rrnn_convex.datasets.benchmarks import cascaded_tanks
    b = cascaded_tanks(SYSID / "cascaded_tanks")
    est = RobustRNNRegressor(8, 16, normalize=normalize)
    model = est.initial_model(b.train.u, b.train.y)
    assert np.linalg.cond(model.E) < 1e6
    assert certify(model, contraction_only=True).certified
    y = b.train.y
    rmse_start = float(np.sqrt(np.mean((model.simulate(b.train.u) - y) ** 2)))
    assert rmse_start < float(np.std(y))  # better than predicting the mean (std 2.2 V)
