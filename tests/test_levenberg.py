"""The shared Levenberg-Marquardt pieces (rrnn_convex.levenberg) and the fit's state (FitState)."""
import dataclasses
import json

import numpy as np
import pytest

from rrnn_convex import levenberg
from rrnn_convex.fit import Windows
from rrnn_convex.fit_state import CHECKPOINT_VERSION, FitState
from rrnn_convex.levenberg import Trial
from rrnn_convex.linearize import Linearization
from rrnn_convex.scaling import ChannelScaling

from conftest import random_rnn


# ---------------------------------------------------------------------- the mu rule
@pytest.mark.parametrize("ratio,factor", [(2.0, 1 / 3), (0.76, 1 / 3), (0.75, 1.0), (0.5, 1.0), (0.26, 1.0),
                                          (0.25, 2.0), (0.1, 2.0), (0.0011, 2.0)])
def test_mu_after_an_accepted_step(ratio, factor):
    assert levenberg.next_mu(3.0, Trial("accepted", ratio=ratio)) == 3.0 * factor


@pytest.mark.parametrize("kind,factor", [("solver", 10.0), ("ratio", 4.0), ("certificate", 4.0)])
def test_mu_after_a_rejected_step(kind, factor):
    assert levenberg.next_mu(3.0, Trial(kind, "why")) == 3.0 * factor


def test_an_unknown_rejection_kind_is_an_error():
    with pytest.raises(ValueError, match="Trial.kind.*'other'"):
        Trial("other")


def test_an_accepted_trial_without_a_ratio_is_an_error():
    with pytest.raises(ValueError, match="Trial.ratio"):
        Trial("accepted")
    assert levenberg.next_mu(3.0, Trial("accepted", ratio=np.inf)) == 1.0  # a huge ratio: mu / 3


# ---------------------------------------------------------------------- the ratio test
@pytest.mark.parametrize("L0,L1,pred,accepted", [
    (1000.0, 999.0, 1000.0, False),  # ratio exactly MIN_RATIO = 1e-3: not more than it
    (1000.0, 998.9, 1000.0, True),  # just above
    (1.0, 0.5, 0.5, True),  # ratio 1
    (1.0, 1.0, 0.5, False),  # no decrease
    (1.0, 0.5, 0.0, False),  # no predicted decrease: ratio -inf, whatever the loss did
    (1.0, 0.5, -1.0, False),
    (1.0, np.inf, 1.0, False),  # a diverging candidate
    (1.0, np.nan, 1.0, False),
    (1.0, 2.0, 1.0, False),
])
def test_ratio_test_boundaries(L0, L1, pred, accepted):
    t = levenberg.ratio_test(L0, L1, pred, candidate="c")
    assert t.accepted is accepted and t.candidate == "c"
    assert t.loss == L1 or (np.isnan(L1) and np.isnan(t.loss))
    if pred <= 0:
        assert t.ratio == -np.inf
    if not accepted:
        assert t.kind == "ratio" and t.info == f"ratio {t.ratio:.3g}"
    else:
        assert t.info == "" and t.ratio == pytest.approx((L0 - L1) / pred)


# ---------------------------------------------------------------------- the Gauss-Newton model
def _explicit_problem(seed=0, B=3, rows=7, P=5, n=2):
    """An explicit J = [J_theta, blockdiag(J_x0 per window)] and r, with the Linearization of it."""
    rng = np.random.default_rng(seed)
    Jt = rng.standard_normal((B, rows, P))
    Jx = rng.standard_normal((B, rows, n))
    r = rng.standard_normal((B, rows))
    lin = Linearization(y_hat=r[:, :, None].copy(), residual=r[:, :, None].copy(),
                        H=np.einsum("brp,brq->pq", Jt, Jt), g=np.einsum("brp,br->p", Jt, r),
                        Hx=np.einsum("brn,brm->bnm", Jx, Jx), Hxt=np.einsum("brn,brp->bnp", Jx, Jt),
                        gx=np.einsum("brn,br->bn", Jx, r))
    J = np.zeros((B * rows, P + B * n))
    for b in range(B):
        J[b * rows:(b + 1) * rows, :P] = Jt[b]
        J[b * rows:(b + 1) * rows, P + b * n:P + (b + 1) * n] = Jx[b]
    return lin, J, r.ravel()


def test_predicted_decrease_is_the_decrease_of_the_gauss_newton_model():
    lin, J, r = _explicit_problem()
    rng = np.random.default_rng(1)
    P, (B, n) = lin.H.shape[0], lin.gx.shape
    for _ in range(5):
        d, dx = rng.standard_normal(P), rng.standard_normal((B, n))
        step = np.concatenate([d, dx.ravel()])
        exact = r @ r - np.sum((r + J @ step) ** 2)
        assert levenberg.predicted_decrease(lin, d, dx) == pytest.approx(exact, rel=1e-10, abs=1e-10)
    assert lin.loss == pytest.approx(r @ r)


@pytest.mark.parametrize("marquardt", [False, True])
def test_the_damped_step_minimises_the_damped_model(marquardt):
    """(d, dx) from reduced_system and x0_step solve the stacked damped normal equations
    (J'J + mu D) s = -J'r with every initial state learned, and dx = 0 when they are not."""
    lin, J, r = _explicit_problem(seed=2)
    mu, P = 0.3, lin.H.shape[0]
    D = np.diag(np.diag(J.T @ J)) if marquardt else np.eye(J.shape[1])
    full = -np.linalg.solve(J.T @ J + mu * D, J.T @ r)
    Hr, gr = levenberg.reduced_system(lin, mu, True, marquardt)
    d = -np.linalg.solve(Hr, gr)
    dx = levenberg.x0_step(lin, d, mu, True, marquardt)
    np.testing.assert_allclose(np.concatenate([d, dx.ravel()]), full, rtol=1e-9, atol=1e-12)
    # frozen initial states: the weights' own damped step, no state step
    Hf, gf = levenberg.reduced_system(lin, mu, False, marquardt)
    Jt = J[:, :P]
    Dt = np.diag(np.diag(Jt.T @ Jt)) if marquardt else np.eye(P)
    np.testing.assert_allclose(-np.linalg.solve(Hf, gf), -np.linalg.solve(Jt.T @ Jt + mu * Dt, Jt.T @ r),
                               rtol=1e-9, atol=1e-12)
    assert not np.any(levenberg.x0_step(lin, d, mu, False, marquardt))
    # and the predicted decrease of a damped step is positive
    assert levenberg.predicted_decrease(lin, d, dx) > 0


def test_moved_x0_moves_only_the_minibatch_and_copies():
    x0 = np.arange(12.0).reshape(6, 2)
    idx, dx = np.array([1, 4]), np.ones((2, 2))
    out = levenberg.moved_x0(x0, idx, dx, True)
    assert out is not x0 and np.array_equal(x0, np.arange(12.0).reshape(6, 2))
    expected = x0.copy()
    expected[idx] += 1.0
    np.testing.assert_array_equal(out, expected)
    kept = levenberg.moved_x0(x0, idx, dx, False)
    assert kept is not x0 and np.array_equal(kept, x0)


# ---------------------------------------------------------------------- minibatches
def test_minibatches_are_reproducible_sorted_and_distinct():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    draws = [levenberg.minibatch(a, 20, 7) for _ in range(10)]
    assert all(np.array_equal(x, levenberg.minibatch(b, 20, 7)) for x in draws)
    for x in draws:
        assert len(x) == 7 and len(set(x)) == 7 and np.all(np.diff(x) > 0) and 0 <= x.min() and x.max() < 20
    assert len({tuple(x) for x in draws}) > 1  # a new minibatch each time


@pytest.mark.parametrize("size", [None, 0, 20, 25])
def test_the_whole_batch_draws_nothing(size):
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(levenberg.minibatch(rng, 20, size), np.arange(20))
    assert rng.bit_generator.state == state


# ---------------------------------------------------------------------- one iteration
def _scripted(*trials):
    """A step returning ``trials`` in turn and recording the mu it was called with."""
    calls = []

    def step(mu):
        calls.append(mu)
        return trials[len(calls) - 1]
    return step, calls


def test_iteration_raises_mu_until_a_step_is_accepted():
    step, calls = _scripted(Trial("solver", "s"), Trial("ratio", "ratio -1"), Trial("certificate", "c"),
                            Trial("accepted", ratio=0.9, loss=0.5, candidate="new"))
    res = levenberg.iterate(step, 1.0, 2.0)
    assert calls == [1.0, 10.0, 40.0, 160.0]
    assert res.accepted and res.trial.candidate == "new" and res.mu == pytest.approx(160.0 / 3)
    assert res.failures == ("solver", "ratio", "certificate") and res.info == "c"
    assert res.batch_loss == 0.5 and not res.out_of_time


def test_iteration_gives_up_after_max_trials():
    step, calls = _scripted(*[Trial("ratio", f"ratio -{k}") for k in range(levenberg.MAX_TRIALS)])
    res = levenberg.iterate(step, 1.0, 2.0)
    assert len(calls) == levenberg.MAX_TRIALS == 8 and res.mu == 4.0 ** 8
    assert not res.accepted and res.trial is None and res.batch_loss == 2.0 and res.info == "ratio -7"


def test_iteration_stops_when_time_runs_out_or_the_caller_says_so():
    step, calls = _scripted(Trial("ratio", "first"), Trial("ratio", "second"))
    left = iter([True, False])
    res = levenberg.iterate(step, 1.0, 2.0, time_left=lambda: next(left))
    assert res.out_of_time and len(calls) == 1 and res.info == "first" and res.mu == 4.0
    step, calls = _scripted(Trial("solver", "a"), Trial("solver", "b"), Trial("ratio", "c"))
    seen = []

    def after(failures):
        seen.append(list(failures))
        return levenberg.STOP if failures[-2:] == ["solver", "solver"] else None
    res = levenberg.iterate(step, 1.0, 2.0, after_failure=after)
    assert seen == [["solver"], ["solver", "solver"]] and len(calls) == 2 and res.mu == 100.0
    assert not res.out_of_time and not res.accepted


# ---------------------------------------------------------------------- early stopping
@pytest.mark.parametrize("best,stall,score,accepted,scored,expected", [
    (0.5, 3, 0.4, True, True, (True, 0)),
    (0.5, 3, 0.4, False, True, (True, 0)),
    (0.5, 3, 0.5, True, True, (False, 4)),  # equal is not better
    (0.5, 3, 0.5 - 1e-13, True, True, (False, 4)),  # nor within IMPROVEMENT
    (0.5, 3, 0.6, False, True, (False, 3)),  # rejected steps do not count
    (0.5, 3, np.nan, True, True, (False, 4)),
    (np.nan, 3, np.nan, True, False, (True, 0)),  # no validation data: the current model
])
def test_track_best(best, stall, score, accepted, scored, expected):
    assert levenberg.track_best(best, stall, score, accepted, scored) == expected


# ---------------------------------------------------------------------- FitState
def _sample_state(rng):
    """A state whose every field differs from its default."""
    model = random_rnn(rng, 2, 3, 1, 1)
    values = {"model": model, "x0": rng.standard_normal((4, 2)),
              "point": {"P": rng.standard_normal((2, 2)), "lam": rng.uniform(1, 2, 3)},
              "mu": 0.25, "history": [{"iteration": 0, "loss": 1.5, "accepted": True, "info": ""}],
              "rng_state": np.random.default_rng(3).bit_generator.state,
              "best_model": random_rnn(rng, 2, 3, 1, 1), "best_val": 0.125, "best_x0": rng.standard_normal((4, 2)),
              "stall": 2, "settings": {"n_states": 2, "window": 50}, "interior_pause": 3,
              "best_point": {"P": rng.standard_normal((2, 2)), "lam": rng.uniform(1, 2, 3)}, "batch_growths": 1}
    names = [f.name for f in dataclasses.fields(FitState)]
    assert sorted(values) == sorted(names), "a new FitState field needs a value here"
    state = FitState(**values)
    for f in dataclasses.fields(FitState):
        if f.default is not dataclasses.MISSING:
            assert not _same(getattr(state, f.name), f.default), f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert not _same(getattr(state, f.name), f.default_factory()), f.name
    return state


def _same(a, b) -> bool:
    if hasattr(a, "weights") or hasattr(b, "weights"):
        return (hasattr(a, "weights") and hasattr(b, "weights") and a.activation.to_dict() == b.activation.to_dict()
                and a.weights().keys() == b.weights().keys()
                and all(np.array_equal(v, b.weights()[k]) for k, v in a.weights().items()))
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _save(state, path):
    state.save(path, ChannelScaling.identity(1, 1), Windows.cut(4, 100, 50, None))


def test_fit_state_round_trips_every_field(tmp_path):
    state = _sample_state(np.random.default_rng(0))
    _save(state, tmp_path / "c.npz")
    loaded, meta = FitState.load(tmp_path / "c.npz")
    for f in dataclasses.fields(FitState):
        assert _same(getattr(loaded, f.name), getattr(state, f.name)), f.name
    assert meta["version"] == CHECKPOINT_VERSION and meta["windows"] == {"length": 50, "count": 2 * 4}
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.mu = 1.0
    changed = dataclasses.replace(loaded, stall=0)
    assert changed.stall == 0 and loaded.stall == 2 and changed.model is loaded.model


def test_fit_state_file_layout_is_the_version_2_format(tmp_path):
    """The keys checkpoints have had since format version 2: files written before still load."""
    state = _sample_state(np.random.default_rng(1))
    _save(state, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        files = set(z.files)
        meta = json.loads(str(z["meta"]))
    weights = set(state.model.weights())
    assert files == ({f"model_{k}" for k in weights} | {f"best_{k}" for k in weights} | {"x0", "best_x0", "meta"}
                     | {"point_P", "point_lam", "bestpoint_P", "bestpoint_lam"})
    assert set(meta) == {"mu", "history", "rng", "best_val", "stall", "activation", "version", "scaling", "windows",
                         "settings", "interior_pause", "batch_growths"}
    assert CHECKPOINT_VERSION == 2


def _rewrite(path, out, drop_files=(), arrays=None, **meta_changes):
    with np.load(path) as z:
        payload = {k: z[k] for k in z.files if k not in drop_files} | dict(arrays or {})
    meta = json.loads(str(payload["meta"]))
    for k, v in meta_changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    payload["meta"] = np.array(json.dumps(meta))
    np.savez(out, **payload)
    return out


def test_checkpoints_without_the_later_fields_load_with_their_defaults(tmp_path):
    _save(_sample_state(np.random.default_rng(2)), tmp_path / "c.npz")
    old = _rewrite(tmp_path / "c.npz", tmp_path / "old.npz", drop_files=("bestpoint_P", "bestpoint_lam"),
                   settings=None, interior_pause=None, batch_growths=None)
    state, _ = FitState.load(old)
    assert state.settings == {} and state.interior_pause == 0
    assert state.best_point == {} and state.batch_growths == 0
    with pytest.raises(ValueError, match="records no fit settings"):
        state.check_resume(old, {"n_states": 2})


def test_other_versions_and_incomplete_checkpoints_are_refused(tmp_path):
    _save(_sample_state(np.random.default_rng(3)), tmp_path / "c.npz")
    with pytest.raises(ValueError, match="checkpoint format version 1 is not the one this package writes"):
        FitState.load(_rewrite(tmp_path / "c.npz", tmp_path / "v1.npz", version=1))
    with pytest.raises(ValueError, match=r"incomplete checkpoint \(missing \['best_x0', 'meta.stall'\]\)"):
        FitState.load(_rewrite(tmp_path / "c.npz", tmp_path / "bad.npz", drop_files=("best_x0",), stall=None))
    with pytest.raises(ValueError, match="malformed model"):
        FitState.load(_rewrite(tmp_path / "c.npz", tmp_path / "m.npz", arrays={"model_F": np.eye(5)}))
