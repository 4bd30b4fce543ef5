"""The mass-spring-damper example of the paper: simulator fidelity, input generator, splits, file loader."""
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from rrnn_convex.datasets import (MassSpringDamper, SequenceData, load_paper_msd, make_datasets,
                                  random_hold_input)
from rrnn_convex.metrics import nse

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MSD_DIR = DATA / "msd_dataset"
needs_msd = pytest.mark.skipif(not MSD_DIR.is_dir(), reason=f"reference data not found at {MSD_DIR}")

# The paper's constants, written out independently of the package (shared/data/README.md)
K = np.linspace(1.0, 0.5, 4)
C = 0.5 * np.linspace(0.5, 1.0, 4)
M = 0.5 * np.linspace(0.5, 1.0, 4)


def spring(e):
    return np.where(np.abs(e) < 1, 0.25 * e, np.where(e >= 1, e - 0.75, e + 0.75))


def reference_rhs(x, force):
    """Newton's law for the chain, cart by cart (state interleaved d0, v0, d1, v1, ...)."""
    d, v = x[0::2], x[1::2]
    acc = np.zeros(4)
    for i in range(4):
        left_d = d[i - 1] if i > 0 else 0.0
        left_v = v[i - 1] if i > 0 else 0.0
        f = -K[i] * spring(d[i] - left_d) - C[i] * (v[i] - left_v)  # spring/damper i (to the left)
        if i < 3:
            f += K[i + 1] * spring(d[i + 1] - d[i]) + C[i + 1] * (v[i + 1] - v[i])
        if i == 0:
            f += force
        acc[i] = f / M[i]
    dx = np.empty(8)
    dx[0::2], dx[1::2] = v, acc
    return dx


def reference_simulation(u, x0, Ts=0.5):
    """solve_ivp RK45 at tight tolerances, input linearly interpolated, states at the samples."""
    T = len(u)
    t_grid = np.arange(T) * Ts
    force = lambda t: np.interp(t, t_grid, u)  # noqa: E731
    sol = solve_ivp(lambda t, x: reference_rhs(x, force(t)), (0.0, t_grid[-1]), x0, t_eval=t_grid,
                    method="RK45", rtol=1e-9, atol=1e-11)
    assert sol.success
    return sol.y.T


def runs(u):
    """Run-length encoding of a 1-D piecewise-constant signal: (levels, lengths)."""
    change = np.flatnonzero(np.diff(u) != 0) + 1
    bounds = np.concatenate([[0], change, [len(u)]])
    return u[bounds[:-1]], np.diff(bounds)


@pytest.fixture(scope="module")
def splits():
    return make_datasets(seed=0)


# ------------------------------------------------------------------------ integrator accuracy
def test_fast_integrator_matches_solve_ivp_rk45():
    rng = np.random.default_rng(7)
    T = 120
    u = random_hold_input(T, 6.0, rng)[:, 0]  # large input: the springs cross their kinks
    x0 = rng.uniform(-5, 5, size=8)
    ref = reference_simulation(u, x0)
    assert np.max(np.abs(np.diff(ref[:, 0::2], axis=1))) > 1.0, "the test must exercise the spring kinks"
    errs = {}
    for substeps in (10, 40):
        xs = MassSpringDamper(substeps=substeps).states(u, x0)
        errs[substeps] = np.max(np.abs(xs - ref))
        y = MassSpringDamper(substeps=substeps).simulate(u, x0, noise_std=0)
        assert y.shape == (T, 1)
        np.testing.assert_array_equal(y[:, 0], xs[:, 6])  # output = position of the last cart
    assert errs[10] < 2e-3
    assert errs[40] < 1e-4
    assert errs[40] < errs[10] / 4, "refining the step must converge to the RK45 solution"


def test_simulator_is_vectorised_over_the_batch():
    rng = np.random.default_rng(1)
    u = rng.uniform(-2, 2, size=(3, 50, 1))
    x0 = rng.uniform(-5, 5, size=(3, 8))
    sys_ = MassSpringDamper()
    yb = sys_.simulate(u, x0, noise_std=0)
    for i in range(3):
        np.testing.assert_allclose(yb[i], sys_.simulate(u[i], x0[i], noise_std=0), rtol=0, atol=1e-13)


def test_noise_level_and_reproducibility():
    sys_ = MassSpringDamper()
    u = np.zeros((1500, 1))
    y = sys_.simulate(u, rng=3)  # zero input and state: the output is pure noise
    assert abs(np.std(y) - 0.05) < 0.004
    np.testing.assert_array_equal(y, sys_.simulate(u, rng=3))
    assert np.all(MassSpringDamper(noise_std=0.0).simulate(u) == 0)


def test_small_signal_gain_matches_documented_resonance():
    """Linearised with the inner spring slope, the peak gain is about 11.5 at 0.23 rad/s (data README)."""
    A, B, Cm = MassSpringDamper().linearised(0.25)
    w = np.linspace(0.01, 3, 6000)
    g = np.array([abs((Cm @ np.linalg.solve(1j * x * np.eye(8) - A, B))[0, 0]) for x in w])
    assert g.max() == pytest.approx(11.5, abs=0.1)
    assert w[np.argmax(g)] == pytest.approx(0.23, abs=0.01)


def test_simulator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mass"):
        MassSpringDamper(mass=[1.0, 2.0])
    with pytest.raises(ValueError, match="substeps"):
        MassSpringDamper(substeps=0)
    with pytest.raises(ValueError, match="u: expected one input channel"):
        MassSpringDamper().simulate(np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"x0: expected shape \(8,\)"):
        MassSpringDamper().simulate(np.zeros((10, 1)), x0=np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        MassSpringDamper().simulate(np.array([[0.0], [np.nan]]))


# ------------------------------------------------------------------------ input generator
def test_random_hold_input_statistics():
    w = 3.0
    u = random_hold_input(200_000, w, np.random.default_rng(0))
    assert u.shape == (200_000, 1) and u.dtype == np.float64
    levels, lengths = runs(u[:, 0])
    assert np.all(np.abs(levels) <= w / 2)
    assert lengths.max() <= 99 and lengths.min() >= 1
    body = lengths[:-1]  # the last hold is cut at T
    # holds uniform on {1..99} once the zero-length draws are skipped: mean 50, median 50
    assert abs(body.mean() - 50.0) < 1.5
    assert abs(np.mean(body <= 50) - 50 / 99) < 0.03
    # levels uniform on [-w/2, w/2]: mean 0, standard deviation w / sqrt(12)
    assert abs(levels.mean()) < 0.05
    assert abs(levels.std() - w / np.sqrt(12)) < 0.03


def test_random_hold_input_batch_and_determinism():
    a = random_hold_input(300, 2.0, 5, batch=4)
    assert a.shape == (4, 300, 1)
    np.testing.assert_array_equal(a, random_hold_input(300, 2.0, 5, batch=4))
    assert not np.array_equal(a, random_hold_input(300, 2.0, 6, batch=4))
    with pytest.raises(ValueError, match="period"):
        random_hold_input(10, 1.0, 0, period=1)
    with pytest.raises(ValueError, match="width"):
        random_hold_input(10, -1.0, 0)


# ------------------------------------------------------------------------ splits
def test_splits_have_the_documented_shapes_and_flags(splits):
    assert splits.train.u.shape == (100, 1000, 1) and splits.train.y.shape == (100, 1000, 1)
    for d in [splits.init, splits.val, *splits.tests.values()]:
        assert d.u.shape == (1, 5000, 1) and d.y.shape == (1, 5000, 1)
        assert d.x0_known.all()
    assert sorted(splits.tests) == [1.0, 2.0, 3.0, 4.0]
    assert not splits.train.x0_known.any()
    assert splits.train.x0_true.shape == (100, 8)
    assert np.all(np.abs(splits.train.x0_true) <= 5) and np.abs(splits.train.x0_true).max() > 4.5
    assert set(splits.as_dict()) == {"train_u3", "train_u1", "val",
                                     "test_u1", "test_u2", "test_u3", "test_u4"}
    for d in splits.as_dict().values():
        assert d.ts == 0.5 and d.u.dtype == np.float64 and d.y.dtype == np.float64


def test_split_inputs_have_the_documented_levels_and_holds(splits):
    sets = {3.0: splits.train, 1.0: splits.init, **{w: d for w, d in splits.tests.items()}}
    sets[-3.0] = splits.val  # width 3 as well
    for w, d in sets.items():
        w = abs(w)
        u = d.u[:, :, 0]
        assert np.all(np.abs(u) <= w / 2)
        assert np.abs(u).max() > 0.45 * w, f"levels of width {w} should reach close to +-{w / 2}"
        for seq in u[:10]:
            _, lengths = runs(seq)
            assert lengths.max() <= 99


def test_split_outputs_start_where_the_initial_states_say(splits):
    # y[0] is the position of the last cart (state index 6) at t = 0, plus noise of std 0.05
    r = splits.train.y[:, 0, 0] - splits.train.x0_true[:, 6]
    assert np.max(np.abs(r)) < 0.25
    for d in [splits.val, *splits.tests.values()]:
        assert abs(d.y[0, 0, 0]) < 0.25


def test_splits_are_deterministic_in_the_seed():
    a = make_datasets(seed=11, n_train=3, train_length=200, test_length=300)
    b = make_datasets(seed=11, n_train=3, train_length=200, test_length=300)
    c = make_datasets(seed=12, n_train=3, train_length=200, test_length=300)
    for name, d in a.as_dict().items():
        np.testing.assert_array_equal(d.u, b.as_dict()[name].u)
        np.testing.assert_array_equal(d.y, b.as_dict()[name].y)
        assert not np.array_equal(d.u, c.as_dict()[name].u)
        assert not np.array_equal(d.y, c.as_dict()[name].y)
    # each split has its own random stream: changing the training size leaves the tests unchanged
    e = make_datasets(seed=11, n_train=5, train_length=200, test_length=300)
    np.testing.assert_array_equal(e.tests[2.0].y, a.tests[2.0].y)


def test_noise_free_system_reproduces_generated_outputs(splits):
    y = MassSpringDamper().simulate(splits.val.u[:, :1500], noise_std=0)  # zero state: a prefix suffices
    res = splits.val.y[:, :1500] - y
    assert 0.045 < np.sqrt(np.mean(res ** 2)) < 0.055


# ------------------------------------------------------------------------ the authors' files
@pytest.mark.data
@needs_msd
def test_fidelity_against_the_authors_stored_data():
    """Their inputs from zero state through our noise-free simulator: residual = their 0.05 noise."""
    paper = load_paper_msd(MSD_DIR)
    names = ["test_u1", "test_u2", "test_u3", "test_u4", "val"]
    sets = paper.as_dict()
    U = np.concatenate([sets[n].u for n in names])
    Y = np.concatenate([sets[n].y for n in names])
    y_sim = MassSpringDamper().simulate(U, noise_std=0)  # one batch of five 5000-sample records
    rms = np.sqrt(np.mean((y_sim - Y) ** 2, axis=(1, 2)))
    for name, r in zip(names, rms):
        print(f"fidelity residual RMS {name}: {r:.5f}")
    assert np.all(rms <= 0.06), dict(zip(names, rms))
    assert np.all(rms >= 0.04), "a residual far below the noise level means the comparison is broken"
    # the noise floor documented in shared/data/README.md (NSE of the true simulator)
    floor = {"test_u1": 0.0472, "test_u2": 0.0354, "test_u3": 0.0277, "test_u4": 0.0208, "val": 0.0269}
    for i, name in enumerate(names):
        assert nse(y_sim[i], Y[i])[0] == pytest.approx(floor[name], abs=1e-3)


@pytest.mark.data
@needs_msd
def test_authors_inputs_follow_the_documented_generator():
    paper = load_paper_msd(MSD_DIR)
    for name, d in paper.as_dict().items():
        w = d.meta["width"]
        assert np.all(np.abs(d.u) <= w / 2), name
        for seq in d.u[:5, :, 0]:
            assert runs(seq)[1].max() <= 99, name


@pytest.mark.data
@needs_msd
def test_load_paper_msd_layout():
    paper = load_paper_msd(MSD_DIR)
    assert paper.train.u.shape == (100, 1000, 1)
    assert paper.init.u.shape == (1, 5000, 1)
    assert not paper.train.x0_known.any() and paper.val.x0_known.all()
    raw = np.load(MSD_DIR / "train_u3.npy", allow_pickle=True).item()
    np.testing.assert_array_equal(paper.train.u[7, :, 0], raw["u"][7, 0, :])
    np.testing.assert_array_equal(paper.train.y[7, :, 0], raw["y"][7, 0, :])


def test_load_paper_msd_converts_the_channel_axis(tmp_path):
    rng = np.random.default_rng(0)
    raw = {}
    for name, b, T in [("train_u3", 3, 6), ("train_u1", 1, 8), ("val", 1, 8), ("test_u1", 1, 8),
                       ("test_u2", 1, 8), ("test_u3", 1, 8), ("test_u4", 1, 8)]:
        raw[name] = {"u": rng.standard_normal((b, 1, T)), "y": rng.standard_normal((b, 1, T))}
        np.save(tmp_path / f"{name}.npy", np.array(raw[name], dtype=object), allow_pickle=True)
    paper = load_paper_msd(tmp_path)
    assert paper.train.u.shape == (3, 6, 1)
    for b in range(3):
        for t in range(6):
            assert paper.train.u[b, t, 0] == raw["train_u3"]["u"][b, 0, t]
            assert paper.train.y[b, t, 0] == raw["train_u3"]["y"][b, 0, t]
    np.testing.assert_array_equal(paper.tests[4.0].y[0, :, 0], raw["test_u4"]["y"][0, 0])


def test_load_paper_msd_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_paper_msd(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as err:
        load_paper_msd(tmp_path)
    assert str(tmp_path) in str(err.value) and "train_u3.npy" in str(err.value)


def test_generated_data_is_a_sequence_data(splits):
    assert isinstance(splits.train, SequenceData)
    with pytest.raises(ValueError):  # read-only: the container is immutable
        splits.train.u[0, 0, 0] = 1.0
