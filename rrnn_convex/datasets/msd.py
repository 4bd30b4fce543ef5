"""The paper's benchmark system: a chain of four carts with nonlinear springs and dampers.

Revay, Wang & Manchester, "A Convex Parameterization of Robust Recurrent Neural Networks",
numerical example: a mass-spring-damper chain::

    wall - spring/damper 0 - cart 0 - spring/damper 1 - cart 1 - ... - cart 3

with spring constants ``k = linspace(1, 0.5, 4)``, dampers ``c = 0.5 linspace(0.5, 1, 4)``,
masses ``m = 0.5 linspace(0.5, 1, 4)``; spring i exerts ``k_i f(e_i)`` with ``e_i`` its
extension and the piecewise-linear profile::

    f(e) = 0.25 e        for |e| < 1,
    f(e) = e - 0.75      for e >= 1,
    f(e) = e + 0.75      for e <= -1.

The input force acts on cart 0, the output is the position of the last cart plus Gaussian noise
(std 0.05), sampled every ``Ts = 0.5`` s; the input is linearly interpolated between samples
(the authors' ``interp1d`` + ``solve_ivp``). States are ordered as in the authors' code,
positions and velocities interleaved: ``x = (d0, v0, d1, v1, d2, v2, d3, v3)``.

The authors integrated with RK45; here a fixed-step classical Runge-Kutta scheme (RK4, ``substeps``
steps per sample, vectorised over the batch with numpy) does the same job about a hundred times
faster; its agreement with ``scipy.integrate.solve_ivp`` (RK45, tight tolerances) is tested.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import as_float_array, check_scalar, initial_states
from .core import SequenceData

__all__ = ["MassSpringDamper", "MSDSplits", "spring_force", "random_hold_input", "make_datasets",
           "load_paper_msd", "PAPER_FILES"]

N_CARTS = 4


def spring_force(e):
    """The paper's piecewise-linear spring profile f(e): slope 0.25 inside ``|e| < 1``, slope 1 outside.

    ``f(e) = 0.25 e + 0.75 (e - clip(e, -1, 1))``: continuous and odd.

    Parameters
    ----------
    e : array_like
        Spring extensions (any shape); not checked for NaN/inf.

    Returns
    -------
    numpy.ndarray
        float64, shaped like ``e`` (0-d for a scalar).
    """
    e = np.asarray(e, dtype=np.float64)
    return 0.25 * e + 0.75 * (e - np.clip(e, -1.0, 1.0))


@dataclass(frozen=True, eq=False)
class MassSpringDamper:
    """The four-cart chain of the paper's example (module docstring), simulated by fixed-step RK4.

    ``k``, ``c``, ``mass`` default to the paper's values; ``Ts`` is the sampling period,
    ``noise_std`` the output-noise level used by :meth:`simulate` unless overridden, and
    ``substeps`` the number of RK4 steps per sample (10 keeps the error against a tight RK45
    solution near 1e-5, far below the 0.05 noise).

    Parameters
    ----------
    k : array_like, shape (n_carts,)
        Spring constants, the wall's spring first (default ``linspace(1, 0.5, 4)``);
        n_carts >= 1.
    c : array_like, shape (n_carts,)
        Damping constants (default ``0.5 linspace(0.5, 1, 4)``).
    mass : array_like, shape (n_carts,)
        Positive masses (default ``0.5 linspace(0.5, 1, 4)``).
    Ts : float
        Sampling period in seconds (> 0).
    noise_std : float
        Output-noise standard deviation (>= 0).
    substeps : int
        RK4 steps per sample (>= 1).

    Attributes
    ----------
    m, p : int
        One input (the force on cart 0) and one output (the position of the last cart).

    Raises
    ------
    ValueError
        Arrays not 1-D or not one value per cart, no spring, a non-positive mass, NaN or inf,
        ``Ts <= 0``, ``noise_std < 0`` or ``substeps`` not a positive integer.
    TypeError
        Non-numeric arrays or scalars.
    """

    k: np.ndarray = field(default_factory=lambda: np.linspace(1.0, 0.5, N_CARTS))
    c: np.ndarray = field(default_factory=lambda: 0.5 * np.linspace(0.5, 1.0, N_CARTS))
    mass: np.ndarray = field(default_factory=lambda: 0.5 * np.linspace(0.5, 1.0, N_CARTS))
    Ts: float = 0.5
    noise_std: float = 0.05
    substeps: int = 10

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        arrays = {}
        for name in ("k", "c", "mass"):
            arr = as_float_array(getattr(self, name), name, ndim=1)
            if name == "k":
                nc = arr.shape[0]
                if nc < 1:
                    raise ValueError("k: expected at least one spring, got shape (0,)")
            elif arr.shape != (nc,):
                raise ValueError(f"{name}: expected shape ({nc},) (one value per cart, like k), "
                                 f"got {arr.shape}")
            arrays[name] = arr
        if np.any(arrays["mass"] <= 0):
            raise ValueError(f"mass: expected positive masses, got {arrays['mass']}")
        for name, arr in arrays.items():
            arr.setflags(write=False)
            set_(name, arr)
        set_("Ts", check_scalar(self.Ts, "Ts", low=0.0))
        set_("noise_std", check_scalar(self.noise_std, "noise_std", low=0.0, low_inclusive=True))
        set_("substeps", _check_count(self.substeps, "substeps"))

    # ----------------------------------------------------------------- structure
    @property
    def n_carts(self) -> int:
        """Number of carts (and of springs and dampers)."""
        return self.k.shape[0]

    @property
    def n(self) -> int:
        """Number of states (position and velocity of every cart)."""
        return 2 * self.n_carts

    m = 1  #: one input (the force on cart 0)
    p = 1  #: one output (the position of the last cart)

    def _matrices(self):
        nc = self.n_carts
        # extension of spring j: e_j = d_j - d_{j-1} (d_{-1} = 0, the wall): e = d @ Dm.T
        Dm = np.eye(nc) - np.eye(nc, k=-1)
        # damper forces on the carts: -Dm' diag(c) Dm v; spring forces: -Dm' (k * f(e))
        Cd = Dm.T @ np.diag(self.c) @ Dm
        return Dm, Cd

    def _flat_operators(self):
        """(L', E', G', b) with dx/dt = x L' + clip(x E', -1, 1) G' + u b' on the interleaved state."""
        nc, n = self.n_carts, self.n
        Dm, Cd = self._matrices()
        K1 = Dm.T @ np.diag(self.k) @ Dm  # slope-1 springs
        L = np.zeros((n, n))
        L[0::2, 1::2] = np.eye(nc)
        L[1::2, 0::2] = -K1 / self.mass[:, None]
        L[1::2, 1::2] = -Cd / self.mass[:, None]
        E = np.zeros((nc, n))  # spring extensions e = E x
        E[:, 0::2] = Dm
        G = np.zeros((n, nc))  # + 0.75 Dm' diag(k) clip(e) / m on the accelerations
        G[1::2, :] = 0.75 * (Dm.T * self.k) / self.mass[:, None]
        b = np.zeros(n)
        b[1] = 1.0 / self.mass[0]
        return np.ascontiguousarray(L.T), np.ascontiguousarray(E.T), np.ascontiguousarray(G.T), b

    def dynamics(self, x, u):
        """Time derivative of the state: x of shape (batch, 8) (interleaved), u of shape (batch,).

        Parameters
        ----------
        x : array_like, shape (batch, n)
            States, positions and velocities interleaved (n = 8 for four carts); not checked.
        u : array_like, shape (batch,) or scalar
            The force on cart 0.

        Returns
        -------
        numpy.ndarray, shape (batch, n)
            ``dx/dt``.
        """
        x = np.asarray(x, dtype=np.float64)
        Dm, Cd = self._matrices()
        d, v = x[:, 0::2], x[:, 1::2]
        forces = -(self.k * spring_force(d @ Dm.T)) @ Dm - v @ Cd
        forces[:, 0] += np.asarray(u, dtype=np.float64)
        dx = np.empty_like(x)
        dx[:, 0::2] = v
        dx[:, 1::2] = forces / self.mass
        return dx

    # ----------------------------------------------------------------- simulation
    def states(self, u, x0=None):
        """Noise-free states at the sample times: u (T, 1) or (batch, T, 1) -> (T, 8) or (batch, T, 8).

        ``states[t]`` is the state at time ``t Ts``; between samples the input is the linear
        interpolation of ``u[t]`` and ``u[t+1]``. Integration: RK4 with ``substeps`` steps per
        sample, vectorised over the batch.

        Parameters
        ----------
        u : array_like, shape (T,), (T, 1) or (batch, T, 1)
            The input force, T >= 1.
        x0 : array_like, shape (n,), (1, n) or (batch, n), optional
            Initial states (positions and velocities interleaved); zeros by default.

        Returns
        -------
        numpy.ndarray
            Shape (batch, T, n) for a 3-D ``u``, else (T, n); the first sample is ``x0``.

        Raises
        ------
        ValueError
            A ``u`` of another shape or without samples, a bad ``x0``, NaN or inf.
        TypeError
            Non-numeric ``u``.
        """
        arr = as_float_array(u, "u", ndim=(1, 2, 3))
        batched = arr.ndim == 3
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim == 2:
            arr = arr[None]
        if arr.shape[2] != 1:
            raise ValueError(f"u: expected one input channel (shape (T,), (T, 1) or (batch, T, 1)), "
                             f"got shape {np.shape(u)}")
        batch, T, _ = arr.shape
        if T < 1:
            raise ValueError(f"u: expected at least one sample, got shape {np.shape(u)}")
        x = initial_states(x0, batch, self.n, "positions and velocities interleaved")
        uu = arr[:, :, 0]
        LT, ET, GT, b = self._flat_operators()
        S = self.substeps
        h = self.Ts / S
        xs = np.empty((batch, T, self.n))
        xs[:, 0] = x
        # f(x, u) = x L' + clip(x E', -1, 1) G' + u b'  (spring profile f(e) = e - 0.75 clip(e, -1, 1))

        def f(x, uk):
            return x @ LT + np.clip(x @ ET, -1.0, 1.0) @ GT + uk[:, None] * b

        fr = np.arange(S) / S
        for t in range(T - 1):
            u0, du = uu[:, t], uu[:, t + 1] - uu[:, t]
            for j in range(S):
                ua = u0 + fr[j] * du
                um = ua + (0.5 / S) * du
                ub = ua + (1.0 / S) * du
                k1 = f(x, ua)
                k2 = f(x + (0.5 * h) * k1, um)
                k3 = f(x + (0.5 * h) * k2, um)
                k4 = f(x + h * k3, ub)
                x = x + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
            xs[:, t + 1] = x
        return xs if batched else xs[0]

    def simulate(self, u, x0=None, *, noise_std: float | None = None, rng=None, return_states: bool = False):
        """Measured output: position of the last cart plus Gaussian noise.

        ``u`` of shape (T,), (T, 1) or (batch, T, 1); ``x0`` (8,) or (batch, 8), zeros by default.
        ``noise_std`` defaults to the system's ``noise_std`` (0.05); pass 0 for the noise-free
        output. ``rng`` is a ``numpy.random.Generator`` or a seed (fresh entropy when None).
        Returns y shaped (T, 1) or (batch, T, 1) (and the states with ``return_states=True``).

        Parameters
        ----------
        u : array_like, shape (T,), (T, 1) or (batch, T, 1)
        x0 : array_like, shape (n,), (1, n) or (batch, n), optional
        noise_std : float, optional
            >= 0; the system's ``noise_std`` when None.
        rng : numpy.random.Generator, int or None
            Source of the noise.
        return_states : bool
            Also return the noise-free states.

        Returns
        -------
        y : numpy.ndarray
            Shape (batch, T, 1) for a 3-D ``u``, else (T, 1).
        states : numpy.ndarray
            Only with ``return_states``: as :meth:`states`.

        Raises
        ------
        ValueError
            As :meth:`states`, or a negative or non-finite ``noise_std``.
        TypeError
            Non-numeric ``u`` or ``noise_std``.
        """
        xs = self.states(u, x0)
        y = xs[..., -2:-1].copy()
        std = self.noise_std if noise_std is None else check_scalar(noise_std, "noise_std", low=0.0,
                                                                      low_inclusive=True)
        if std > 0:
            y += std * np.random.default_rng(rng).standard_normal(y.shape)
        return (y, xs) if return_states else y

    def linearised(self, slope: float = 0.25):
        """Continuous-time (A, B, C) of the chain with every spring replaced by ``slope * k_i e``.

        ``slope = 0.25`` is the small-signal model (inner spring segment), 1 the large-signal one.

        Parameters
        ----------
        slope : float
            The spring slope (any finite value).

        Returns
        -------
        A : numpy.ndarray, shape (n, n)
        B : numpy.ndarray, shape (n, 1)
        C : numpy.ndarray, shape (1, n)
            In the state ordering of :meth:`states`: ``dx/dt = A x + B u``, ``y = C x``.

        Raises
        ------
        ValueError
            A non-finite ``slope``.
        TypeError
            A non-numeric ``slope``.
        """
        slope = check_scalar(slope, "slope")
        Dm, Cd = self._matrices()
        nc = self.n_carts
        K = Dm.T @ np.diag(slope * self.k) @ Dm
        Minv = np.diag(1.0 / self.mass)
        A = np.zeros((2 * nc, 2 * nc))
        A[0::2, 1::2] = np.eye(nc)
        A[1::2, 0::2] = -Minv @ K
        A[1::2, 1::2] = -Minv @ Cd
        B = np.zeros((2 * nc, 1))
        B[1, 0] = 1.0 / self.mass[0]
        C = np.zeros((1, 2 * nc))
        C[0, -2] = 1.0
        return A, B, C


def random_hold_input(T: int, width: float, rng=None, *, batch: int | None = None, period: int = 100):
    """Random piecewise-constant input of the paper's example (the authors' ``random_bit_stream``).

    Each hold lasts a whole number of samples drawn uniformly from ``{0, ..., period - 1}`` (a
    zero-length hold contributes nothing: the next hold is drawn), each level is uniform on
    ``[-width/2, width/2]``; the last hold is cut at ``T``. Returns (T, 1), or with ``batch``
    one stream of ``batch * T`` samples reshaped to (batch, T, 1) as the authors did for the
    training set (holds may continue across sequence boundaries).

    Parameters
    ----------
    T : int
        Samples per sequence (>= 1).
    width : float
        Peak-to-peak range of the levels (>= 0).
    rng : numpy.random.Generator, int or None
        Random source (fresh entropy when None).
    batch : int, optional
        Number of sequences (>= 1).
    period : int
        Hold lengths are drawn from ``{0, ..., period - 1}`` (>= 2).

    Returns
    -------
    numpy.ndarray
        Shape (T, 1), or (batch, T, 1) with ``batch``.

    Raises
    ------
    ValueError
        ``T``, ``batch`` or ``period`` not a positive integer, ``period < 2``, or a negative or
        non-finite ``width``.
    TypeError
        A non-numeric ``width``.
    """
    T = _check_count(T, "T")
    width = check_scalar(width, "width", low=0.0, low_inclusive=True)
    period = _check_count(period, "period")
    if period < 2:
        raise ValueError(f"period: expected an integer >= 2 "
                         f"(hold lengths are drawn from {{0, ..., period - 1}}), "
                         f"got {period}")
    total = T if batch is None else T * _check_count(batch, "batch")
    rng = np.random.default_rng(rng)
    parts, have = [], 0
    while have < total:
        need = total - have
        n_draw = int(1.2 * need / (0.5 * (period - 1))) + 16  # mean hold (period - 1) / 2
        holds = rng.integers(0, period, size=n_draw)
        levels = rng.uniform(-0.5 * width, 0.5 * width, size=n_draw)
        seg = np.repeat(levels, holds)
        parts.append(seg)
        have += seg.shape[0]
    u = np.concatenate(parts)[:total]
    return u.reshape(T, 1) if batch is None else u.reshape(batch, T, 1)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class MSDSplits:
    """The mass-spring-damper data sets of the paper, in the package layout.

    ``train``: 100 sequences x 1000 samples, width 3, unknown (random) initial states;
    ``init``: the 5000-sample width-1 zero-initial-state record for subspace initialisation
    (the authors' ``train_u1``); ``val``: 5000 samples, width 3, zero initial state;
    ``tests``: width -> 5000-sample test record from zero initial state (widths 1, 2, 3, 4).

    Parameters
    ----------
    train : SequenceData
        The training sequences.
    init : SequenceData
        The record for subspace initialisation.
    val : SequenceData
        The validation record.
    tests : dict of float to SequenceData
        Test records by input width.
    """

    train: SequenceData
    init: SequenceData
    val: SequenceData
    tests: dict

    def as_dict(self) -> dict:
        """The sets keyed by the authors' file names (``train_u3``, ``train_u1``, ``val``, ``test_u1``...).

        Returns
        -------
        dict of str to SequenceData
            The training set under ``train_u<width>`` (from its ``meta["width"]``; ``train_u3``
            without one, ``train`` when the width is 1), the init record under ``train_u1``,
            ``val``, and ``test_u<width>`` for every test.
        """
        train_key = _width_name("train", self.train, "u3")
        train_key = "train" if train_key == "train_u1" else train_key  # never shadow the init record
        out = {train_key: self.train, "train_u1": self.init, "val": self.val}
        for w, data in self.tests.items():
            out[f"test_u{w:g}"] = data
        return out


def _width_name(prefix, data, default):
    w = data.meta.get("width")
    return f"{prefix}_u{w:g}" if w is not None else f"{prefix}_{default}"


def make_datasets(seed: int = 0, *, system: MassSpringDamper | None = None, n_train: int = 100,
                  train_length: int = 1000, train_width: float = 3.0, x0_range: float = 5.0,
                  test_length: int = 5000, val_width: float = 3.0, init_width: float = 1.0,
                  test_widths=(1.0, 2.0, 3.0, 4.0), period: int = 100) -> MSDSplits:
    """Generate the paper's splits deterministically from ``seed``.

    Training: ``n_train`` sequences of ``train_length`` samples, input width ``train_width``,
    initial states uniform on ``[-x0_range, x0_range]`` per state (stored in ``x0_true``;
    ``x0_known`` is False: a model must estimate them). Validation (width ``val_width``), the
    subspace-initialisation record (width ``init_width``) and the tests (``test_widths``) have
    ``test_length`` samples from a zero initial state. Output noise: ``system.noise_std``.

    Every split draws from its own stream ``SeedSequence([seed, index])``, so the same seed gives
    identical data and changing one split's size leaves the others unchanged. The long records
    are integrated together in one batch.

    Parameters
    ----------
    seed : int
        Non-negative.
    system : MassSpringDamper, optional
        The paper's system by default.
    n_train, train_length : int
        Number and length of the training sequences (>= 1).
    train_width : float
        Input width of the training sequences (>= 0).
    x0_range : float
        Range of the random training initial states (>= 0).
    test_length : int
        Length of the long records (>= 1).
    val_width, init_width : float
        Input widths of the validation and the initialisation records (>= 0).
    test_widths : sequence of float
        One test record per width (>= 0).
    period : int
        See :func:`random_hold_input`.

    Returns
    -------
    MSDSplits
        ``train`` (n_train, train_length, 1) with ``x0_true`` (n_train, n); ``init``, ``val`` and
        each test (1, test_length, 1) with a zero ``x0_true``; ``meta`` holds ``width``,
        ``seed`` and ``source``; ``ts`` is ``system.Ts``.

    Raises
    ------
    TypeError
        A ``system`` that is not a :class:`MassSpringDamper`, or a non-numeric width or range.
    ValueError
        A negative or non-integer ``seed``, a count or length that is not a positive integer,
        ``period < 2``, or a negative or non-finite width or range.
    """
    system = MassSpringDamper() if system is None else system
    if not isinstance(system, MassSpringDamper):
        raise TypeError(f"system: expected a MassSpringDamper, got {type(system).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    x0_range = check_scalar(x0_range, "x0_range", low=0.0, low_inclusive=True)
    test_widths = tuple(check_scalar(w, "test_widths[i]", low=0.0, low_inclusive=True) for w in test_widths)
    rngs = [np.random.default_rng(np.random.SeedSequence([int(seed), i]))
            for i in range(4 + len(test_widths))]

    # training: one input stream reshaped to (n_train, train_length), random initial states
    r = rngs[0]
    u_tr = random_hold_input(train_length, train_width, r, batch=n_train, period=period)
    x0_tr = r.uniform(-x0_range, x0_range, size=(n_train, system.n))
    y_tr = system.simulate(u_tr, x0_tr, rng=r)

    # long zero-initial-state records, simulated together
    long_specs = [("train_u1", init_width, rngs[1]), ("val", val_width, rngs[2])]
    long_specs += [(f"test_u{w:g}", w, rngs[4 + i]) for i, w in enumerate(test_widths)]
    u_long = np.stack([random_hold_input(test_length, w, r, period=period) for _, w, r in long_specs])
    x_long = system.states(u_long)
    out = {}
    for i, (name, w, r) in enumerate(long_specs):
        y = x_long[i, :, -2:-1] + system.noise_std * r.standard_normal((test_length, 1))
        out[name] = SequenceData(u=u_long[i][None], y=y[None], ts=system.Ts, name=f"msd {name}",
                                 x0_known=True, x0_true=np.zeros((1, system.n)),
                                 meta={"width": w, "seed": int(seed), "source": "make_datasets"})
    train = SequenceData(u=u_tr, y=y_tr, ts=system.Ts, name="msd train", x0_known=False, x0_true=x0_tr,
                         meta={"width": float(train_width), "seed": int(seed), "source": "make_datasets"})
    tests = {w: out[f"test_u{w:g}"] for w in test_widths}
    return MSDSplits(train=train, init=out["train_u1"], val=out["val"], tests=tests)


#: the authors' files: name -> (width, initial state known (zero)?)
PAPER_FILES = {"train_u3": (3.0, False), "train_u1": (1.0, True), "val": (3.0, True),
               "test_u1": (1.0, True), "test_u2": (2.0, True), "test_u3": (3.0, True), "test_u4": (4.0, True)}


def _load_paper_file(folder, name):
    from pathlib import Path
    path = Path(folder) / f"{name}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"folder: {str(folder)!r} has no file {path.name!r} "
                                f"(expected the authors' msd_dataset files: "
                                f"{', '.join(k + '.npy' for k in PAPER_FILES)})")
    try:
        obj = np.load(path, allow_pickle=True)
        d = obj.item() if obj.dtype == object and obj.shape == () else None
    except Exception as exc:  # not an .npy, corrupt pickle...
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from None
    if not isinstance(d, dict) or "u" not in d or "y" not in d:
        raise ValueError(f"{path}: expected a 0-d object array holding a dict with keys 'u' and 'y'")
    arrs = {}
    for key in ("u", "y"):
        a = as_float_array(d[key], f"{path.name}['{key}']", ndim=3)
        arrs[key] = np.ascontiguousarray(a.transpose(0, 2, 1))  # (batches, 1, T) -> (batch, T, 1)
    return arrs["u"], arrs["y"]


def load_paper_msd(folder) -> MSDSplits:
    """Read the authors' ``msd_dataset`` folder (imanchester/RobustRNN) into :class:`MSDSplits`.

    Each ``.npy`` is a 0-d object array; ``np.load(f, allow_pickle=True).item()`` is a dict
    ``{'u', 'y'}`` of arrays shaped (batches, 1, T), converted to (batch, T, 1). The files are
    pickles: only load them from a source you trust. Raises FileNotFoundError naming the
    folder and the missing file.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder with ``train_u3.npy``, ``train_u1.npy``, ``val.npy`` and ``test_u1.npy`` to
        ``test_u4.npy`` (``PAPER_FILES``).

    Returns
    -------
    MSDSplits
        ``ts = 0.5``; ``x0_known`` False for the training set only; ``meta`` holds ``width``
        and ``source``.

    Raises
    ------
    FileNotFoundError
        No such folder, or a missing file.
    ValueError
        A file that is not a readable ``.npy``, does not hold a dict with ``'u'`` and ``'y'``,
        or holds arrays that are not 3-D or contain NaN/inf.
    """
    from pathlib import Path
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: no such directory {str(folder)!r} (expected the authors' "
                                f"msd_dataset folder with {', '.join(k + '.npy' for k in PAPER_FILES)})")
    sets = {}
    for name, (width, known) in PAPER_FILES.items():
        u, y = _load_paper_file(folder, name)
        sets[name] = SequenceData(u=u, y=y, ts=0.5, name=f"paper msd {name}", x0_known=known,
                                  meta={"width": width, "source": str(folder / f"{name}.npy")})
    tests = {w: sets[f"test_u{w:g}"] for w in (1.0, 2.0, 3.0, 4.0)}
    return MSDSplits(train=sets["train_u3"], init=sets["train_u1"], val=sets["val"], tests=tests)
