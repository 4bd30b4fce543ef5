"""Shared helpers for the tests: independent reference computations (not the package's code)."""
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from rrnn_convex import ImplicitRNN


def hinf_norm(A, B, C, D, grid=4000):
    """H-infinity norm of the discrete-time system by a dense frequency sweep + local refinement."""
    n = A.shape[0]

    def gain(w):
        G = C @ np.linalg.solve(np.exp(1j * w) * np.eye(n) - A, B) + D
        return np.linalg.svd(G, compute_uv=False)[0]

    w = np.linspace(0.0, np.pi, grid)
    vals = np.array([gain(x) for x in w])
    i = int(np.argmax(vals))
    lo, hi = w[max(i - 1, 0)], w[min(i + 1, grid - 1)]
    res = minimize_scalar(lambda x: -gain(x), bounds=(lo, hi), method="bounded", options={"xatol": 1e-13})
    return max(vals.max(), -res.fun)


def random_stable_lti(rng, n, m, p, rho):
    A = rng.standard_normal((n, n))
    A *= rho / np.max(np.abs(np.linalg.eigvals(A)))
    return A, rng.standard_normal((n, m)), rng.standard_normal((p, n)), rng.standard_normal((p, m))


def lti_model(A, B, C, D, q=2, seed=0):
    """A linear model as an ImplicitRNN: B1 = 0, D21 = 0 (the neurons do not act)."""
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    return ImplicitRNN(F=A, B1=np.zeros((n, q)), B2=B, C1=rng.standard_normal((q, n)),
                       C2=C, D22=D, activation="relu")


def random_rnn(rng, n, q, m, p, activation="relu", scale=0.6, E_far=False):
    """A random implicit RNN with a moderately contracting explicit form."""
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    B1 = rng.standard_normal((n, q)) / np.sqrt(q)
    C1 = rng.standard_normal((q, n)) / np.sqrt(n)
    # shrink so that |A| + |B1||C1| is contracting in norm (certifiable by construction)
    s = scale / (np.linalg.norm(A, 2) + np.linalg.norm(B1, 2) * np.linalg.norm(C1, 2))
    A, B1 = A * s, B1 * np.sqrt(s)
    C1 = C1 * np.sqrt(s)
    E = np.eye(n)
    if E_far:
        E = rng.standard_normal((n, n)) + 3 * np.eye(n)
    return ImplicitRNN(E=E, F=E @ A, B1=E @ B1, B2=E @ rng.standard_normal((n, m)), C1=C1,
                       D12=rng.standard_normal((q, m)), C2=rng.standard_normal((p, n)),
                       D21=rng.standard_normal((p, q)), D22=rng.standard_normal((p, m)),
                       bx=rng.standard_normal(n), bv=rng.standard_normal(q), by=rng.standard_normal(p),
                       activation=activation)


def sampled_incremental_gain(model, rng, pairs=64, T=120, x0=None):
    """max ||y(u1) - y(u2)|| / ||u1 - u2|| over random input pairs, same initial state."""
    u1 = rng.standard_normal((pairs, T, model.m)) * rng.uniform(0.1, 5.0, size=(pairs, 1, 1))
    du = rng.standard_normal((pairs, T, model.m)) * rng.uniform(1e-3, 3.0, size=(pairs, 1, 1))
    # some slowly varying perturbations too (low frequencies carry the largest gains)
    k = pairs // 4
    t = np.arange(T)[None, :, None]
    du[:k] = np.sin(rng.uniform(0, np.pi, size=(k, 1, model.m)) * t) * rng.uniform(0.1, 2.0, size=(k, 1, 1))
    y1 = model.simulate(u1, x0)
    y2 = model.simulate(u1 + du, x0)
    num = np.sqrt(np.sum((y1 - y2) ** 2, axis=(1, 2)))
    den = np.sqrt(np.sum(du ** 2, axis=(1, 2)))
    return float(np.max(num / den))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ---------------------------------------------------------------------- slow tests
def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (or set RRNN_RUN_SLOW=1)")


def pytest_collection_modifyitems(config, items):
    import os

    if config.getoption("--run-slow") or os.environ.get("RRNN_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow (10 s to minutes each): run with --run-slow or RRNN_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------------- shared data
from pathlib import Path as _Path  # noqa: E402

#: ``../shared/data`` beside the repository: the folder that holds msd_dataset/ and sysid/, the
#: layout RRNN_DATA names (the package itself never looks for it)
SHARED_DATA = _Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data():
    """The shared data folder; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def rrnn_in_process(*args):
    """The ``rrnn`` command run in-process (``rrnn_convex.cli.main``): (exit code, stdout, stderr)."""
    import contextlib
    import io

    from rrnn_convex.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def teacher_sequences(seed: int, batch: int, T: int, val_T: int = 0):
    """Training data from a small random ReLU teacher (3 states, 4 neurons), from random initial
    states with 1% output noise: (u, y), and with ``val_T`` also (u_val, y_val) from zero."""
    rng = np.random.default_rng(seed)
    teacher = random_rnn(rng, 3, 4, 1, 1, activation="relu", scale=0.8)
    u = rng.uniform(-2, 2, (batch, T, 1))
    y = teacher.simulate(u, rng.standard_normal((batch, 3))) + 0.01 * rng.standard_normal((batch, T, 1))
    if not val_T:
        return u, y
    uv = rng.uniform(-2, 2, (1, val_T, 1))
    return u, y, (uv, teacher.simulate(uv))


def assert_usage_error(res, *needles):
    """``res`` of :func:`rrnn_in_process` is exit code 2 with a one-line message holding every needle."""
    code, _, err = res
    assert code == 2, res
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
