"""The implicit RNN of docs/design.md section 2: a linear system in feedback with an activation.

    E x[t+1] = F x[t] + B1 w[t] + B2 u[t] + bx
    y[t]     = C2 x[t] + D21 w[t] + D22 u[t] + by
    v[t]     = C1 x[t] + D11 w[t] + D12 u[t] + bv,      w[t] = sigma(v[t])

States x in R^n, inputs u in R^m, outputs y in R^p, q neurons. ``E`` must be invertible.
``D11`` (the equilibrium feedback, zero by default) makes ``w[t]`` the solution of an equation;
see :class:`ImplicitRNN` for when it is well-posed and how it is solved.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ._io import atomic_path, check_input_file
from ._validation import as_float_array, check_state_space, initial_states
from .activations import Activation, get_activation
from ._torch_io import torch_rnn_weights
from .shapes import BIAS_SHAPES, MATRIX_SHAPES, OPTIONAL_MATRIX_SHAPES, WEIGHT_FIELDS

#: the format version written for models without D11 (files of such models are unchanged)
NPZ_FORMAT_VERSION = 1
#: the format version written for models with a nonzero D11: older readers refuse these files
#: instead of silently dropping D11; this package reads both
NPZ_FORMAT_VERSION_D11 = 2

#: E is rejected as singular above this condition number (float64 solves lose all digits there)
MAX_COND_E = 1e12
#: time steps per block of :meth:`ImplicitRNN.simulate` (outputs are computed once per block)
_SIMULATION_BLOCK = 256


@dataclass(frozen=True, eq=False)
class ImplicitRNN:
    """Weights of an implicit RNN (docs/design.md section 2.1), validated and stored as float64.

    Required: ``F`` (n x n), ``B1`` (n x q), ``B2`` (n x m), ``C1`` (q x n), ``C2`` (p x n).
    Optional, defaulting to the identity (E) or zeros: ``E``, ``D12``, ``D21``, ``D22`` and the
    biases ``bx``, ``bv``, ``by``. ``activation`` is a name (``"relu"``, ``"tanh"``,
    ``"sigmoid"``, ``"leaky_relu"``) or an :class:`~rrnn_convex.activations.Activation`.

    Construction checks every shape (the error names the field, the expected and the received
    shape), rejects NaN/inf and a singular ``E``. Instances are immutable; use
    :func:`dataclasses.replace` to change a field.

    Parameters
    ----------
    F : array_like, shape (n, n)
    B1 : array_like, shape (n, q)
    B2 : array_like, shape (n, m)
    C1 : array_like, shape (q, n)
    C2 : array_like, shape (p, n)
    E : array_like, shape (n, n), optional
        Invertible (condition number at most ``MAX_COND_E``); the identity by default.
    D12 : array_like, shape (q, m), optional
    D21 : array_like, shape (p, q), optional
    D22 : array_like, shape (p, m), optional
    bx : array_like, shape (n,), optional
    bv : array_like, shape (q,), optional
    by : array_like, shape (p,), optional
        Biases; a (k, 1) or (1, k) array is accepted and flattened.
    activation : str, dict or Activation
        See :func:`~rrnn_convex.activations.get_activation`; ``"relu"`` by default.
    D11 : array_like, shape (q, q), optional
        The equilibrium feedback of ``v = C1 x + D11 w + D12 u + bv``; zeros by default (the
        model of docs/design.md section 2.1). See Notes.
    well_posed_multiplier : array_like, shape (q,), optional
        A diagonal ``Lambda > 0`` (its diagonal) with ``2 Lambda - Lambda D11 - D11' Lambda > 0``
        that proves a general ``D11`` well-posed. Searched for when not given (or when the one
        given does not prove it); the one used is stored in this field. Ignored (stored as None)
        when ``D11`` is zero or its neurons can be ordered so that it is strictly lower
        triangular. Not a weight: it does not enter :meth:`weights_hash`, ``==`` or files.

    Raises
    ------
    ValueError
        A wrong shape (naming the field, the expected and the received shape), NaN or inf, no
        state (n = 0), a singular or numerically singular ``E``, an unknown activation, or a
        ``D11`` that is not known to be well-posed (see Notes).
    TypeError
        A weight that is not an array of real numbers (complex, boolean, strings).

    Notes
    -----
    With ``D11`` the neurons' outputs are the solution of ``w = sigma(C1 x + D11 w + D12 u + bv)``
    (the equilibrium layer of a recurrent equilibrium network). How it is evaluated depends on
    the structure of ``D11``, which is classified once, at construction:

    * ``D11 == 0``: ``w = sigma(v)``, exactly the code path (and bit for bit the results) of a
      model without ``D11``.
    * The graph "neuron i reads neuron j" (``D11[i, j] != 0``) has no cycle, e.g. a strictly
      lower-triangular ``D11`` (stacked layers, MLP readouts): the neurons are evaluated
      explicitly, level by level (each level is a block of neurons that read only earlier
      levels, e.g. a layer). Always well-posed; no solver.
    * Otherwise ``D11`` must be proved well-posed by a diagonal ``Lambda > 0`` with
      ``2 Lambda - Lambda D11 - D11' Lambda > 0`` (the w-block of the REN's LMI,
      docs/design.md sections 2.5 and 3): for every activation of
      :mod:`~rrnn_convex.activations` (true slopes in [0, 1]) the equilibrium then exists and is
      unique, because ``w -> (sigma^-1 - I)(w) + (I - D11) w`` is strongly monotone in the
      inner product weighted by Lambda. The multiplier is ``well_posed_multiplier`` if that
      proves it, else ``Lambda = I``, else the solution of a small SDP (cvxpy, Clarabel)
      maximising the smallest eigenvalue; every candidate is checked in float64
      (:func:`well_posedness_margin`). None found: ValueError naming D11 and what was tried.
      The equilibrium is then solved to float64 accuracy at every time step: semismooth
      Newton steps (Jacobian ``I - diag(sigma'(v)) D11``, invertible under the same condition)
      with a backtracking line search on the residual, warm-started from the previous step's
      ``w``; where they stall (Newton on the kinks of ReLU can cycle), Douglas-Rachford
      splitting of the two monotone operators (globally convergent under the same condition,
      for any Lambda, with unit step whose resolvents are ``sigma`` and a linear solve with
      ``2I - D11``), followed by Newton polishing. The result is accepted only if the fixed-point residual
      ``max |w - sigma(C1 x + D11 w + D12 u + bv)|`` is at the level of float64 rounding of
      ``v``; otherwise :meth:`simulate` raises RuntimeError.

    This is why a general ``D11`` needs a certificate of well-posedness and a strictly
    lower-triangular one does not: without the monotonicity that Lambda proves, ``D11 = 2 I``
    with ReLU has no equilibrium for ``C1 x + ... > 0`` (``w = relu(v0 + 2 w)`` diverges) and two
    for ``v0 < 0`` (``w = 0`` and ``w = -v0``), and no iteration can be trusted.
    """

    F: np.ndarray
    B1: np.ndarray
    B2: np.ndarray
    C1: np.ndarray
    C2: np.ndarray
    E: np.ndarray | None = None
    D12: np.ndarray | None = None
    D21: np.ndarray | None = None
    D22: np.ndarray | None = None
    bx: np.ndarray | None = None
    bv: np.ndarray | None = None
    by: np.ndarray | None = None
    activation: Activation | str = "relu"
    D11: np.ndarray | None = None
    well_posed_multiplier: np.ndarray | None = field(default=None, repr=False, compare=False)
    _explicit: tuple = field(default=None, init=False, repr=False, compare=False)
    _d11: "_D11Structure" = field(default=None, init=False, repr=False, compare=False)

    def _checked_matrix(self, name: str, r: str, c: str, dims: dict, default=None) -> np.ndarray:
        """Field ``name`` as a read-only float64 (dims[r], dims[c]) array: ``default()`` (else
        zeros) when it is None, a ValueError naming the field and both shapes when it does not fit."""
        value, expected = getattr(self, name), (dims[r], dims[c])
        if value is None:
            arr = default() if default is not None else np.zeros(expected)
        else:
            arr = as_float_array(value, name, ndim=2)
            if arr.shape != expected:
                raise ValueError(f"{name}: expected shape {expected} ({r}={dims[r]}, {c}={dims[c]}), got {arr.shape}")
        arr.setflags(write=False)
        return arr

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("activation", get_activation(self.activation))
        F = as_float_array(self.F, "F", ndim=2)
        if F.shape[0] != F.shape[1]:
            raise ValueError(f"F: expected a square (n, n) matrix, got shape {F.shape}")
        n = F.shape[0]
        if n == 0:
            raise ValueError("F: the model needs at least one state (n >= 1), got shape (0, 0)")
        B1 = as_float_array(self.B1, "B1", ndim=2)
        B2 = as_float_array(self.B2, "B2", ndim=2)
        C2 = as_float_array(self.C2, "C2", ndim=2)
        dims = {"n": n, "q": B1.shape[1], "m": B2.shape[1], "p": C2.shape[0]}
        defaults = {"E": lambda: np.eye(n)}
        for name, r, c in MATRIX_SHAPES:
            set_(name, self._checked_matrix(name, r, c, dims, defaults.get(name)))
        for name, r in BIAS_SHAPES:
            value = getattr(self, name)
            if value is None:
                arr = np.zeros(dims[r])
            else:
                arr = as_float_array(value, name, ndim=(1, 2))
                if arr.ndim == 2 and 1 in arr.shape:
                    arr = arr.reshape(-1)
                if arr.shape != (dims[r],):
                    raise ValueError(f"{name}: expected shape ({dims[r]},) ({r}={dims[r]}), got {arr.shape}")
            arr.setflags(write=False)
            set_(name, arr)
        cond = np.linalg.cond(self.E)
        if not np.isfinite(cond) or cond > MAX_COND_E:
            raise ValueError(
                f"E: must be invertible; got a singular or numerically singular matrix "
                f"(condition number {cond:.3g} > {MAX_COND_E:.0e})")
        for name, r, c in OPTIONAL_MATRIX_SHAPES:
            set_(name, self._checked_matrix(name, r, c, dims))
        lam = self.well_posed_multiplier
        if lam is not None:
            lam = as_float_array(lam, "well_posed_multiplier", ndim=(1, 2))
            if lam.ndim == 2 and lam.shape[0] == lam.shape[1] and np.array_equal(lam, np.diag(np.diag(lam))):
                lam = np.diag(lam).copy()
            if lam.shape != (dims["q"],):
                raise ValueError(f"well_posed_multiplier: expected shape ({dims['q']},) (q={dims['q']}), "
                                 f"the diagonal of Lambda, got {lam.shape}")
        structure = _D11Structure.of(self.D11, lam)
        if structure.lam is not None:
            structure.lam.setflags(write=False)
        set_("well_posed_multiplier", structure.lam)
        set_("_d11", structure)
        set_("_explicit", None)

    # ----------------------------------------------------------------- dimensions
    @property
    def n(self) -> int:
        """Number of states."""
        return self.F.shape[0]

    @property
    def q(self) -> int:
        """Number of neurons."""
        return self.B1.shape[1]

    @property
    def m(self) -> int:
        """Number of inputs."""
        return self.B2.shape[1]

    @property
    def p(self) -> int:
        """Number of outputs."""
        return self.C2.shape[0]

    @property
    def dims(self) -> dict[str, int]:
        """The dimensions as a dict with keys n, q, m, p."""
        return {"n": self.n, "q": self.q, "m": self.m, "p": self.p}

    def weights(self) -> dict[str, np.ndarray]:
        """All weight and bias arrays by field name.

        Returns
        -------
        dict
            Field name (``WEIGHT_FIELDS``, in storage order, then ``"D11"`` when it is nonzero)
            -> read-only float64 array. ``ImplicitRNN(**weights, activation=...)`` rebuilds
            the model.
        """
        return {name: getattr(self, name) for name in WEIGHT_FIELDS + self._extra_fields()}

    # ----------------------------------------------------------------- forms
    def _explicit_matrices(self):
        if self._explicit is None:
            stacked = np.hstack([self.F, self.B1, self.B2, self.bx[:, None]])
            sol = np.linalg.solve(self.E, stacked)
            n, q, m = self.n, self.q, self.m
            object.__setattr__(self, "_explicit", (
                sol[:, :n], sol[:, n:n + q], sol[:, n + q:n + q + m], sol[:, -1]))
        return self._explicit

    def explicit(self) -> "ImplicitRNN":
        """The same model with ``E = I``: ``A = E^-1 F``, ``E^-1 B1``, ``E^-1 B2``, ``E^-1 bx``.

        Computed in float64 by an LU solve, so equal to the implicit model up to rounding
        (docs/design.md section 2.2).

        Returns
        -------
        ImplicitRNN
            The explicit form; C1, D11, D12, C2, D21, D22, bv, by and the activation unchanged.
        """
        A, B1h, B2h, bxh = self._explicit_matrices()
        return replace(self, E=np.eye(self.n), F=A, B1=B1h, B2=B2h, bx=bxh)

    def transform(self, S) -> "ImplicitRNN":
        """The same model in another representation: ``(S E, S F, S B1, S B2, S bx)``.

        Parameters
        ----------
        S : array_like, shape (n, n)
            An invertible matrix.

        Returns
        -------
        ImplicitRNN
            The transformed model; it simulates like this one (a certificate's metric Q becomes
            ``S^-T Q S^-1``).

        Raises
        ------
        ValueError
            S has the wrong shape, or ``S E`` is singular.
        """
        S = as_float_array(S, "S", ndim=2)
        if S.shape != (self.n, self.n):
            raise ValueError(f"S: expected shape {(self.n, self.n)}, got {S.shape}")
        return replace(self, E=S @ self.E, F=S @ self.F, B1=S @ self.B1, B2=S @ self.B2, bx=S @ self.bx)

    # ----------------------------------------------------------------- simulation
    def check_input(self, u, name: str = "u") -> tuple[np.ndarray, bool]:
        """Validate an input array against the model.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
        name : str
            The name used in error messages.

        Returns
        -------
        u : numpy.ndarray, shape (batch, T, m)
            The input as float64 (batch 1 for a (T, m) input).
        batched : bool
            Whether ``u`` had a batch axis.

        Raises
        ------
        ValueError
            Not 2-D or 3-D, the last axis not m, or NaN/inf.
        TypeError
            Not an array of real numbers.
        """
        arr = as_float_array(u, name, ndim=(2, 3))
        batched = arr.ndim == 3
        if not batched:
            arr = arr[None]
        if arr.shape[2] != self.m:
            raise ValueError(
                f"{name}: expected the last axis to hold the model's m={self.m} inputs "
                f"(shape (T, {self.m}) or (batch, T, {self.m})), got shape {np.shape(u)}")
        return arr, batched

    def simulate(self, u, x0=None, *, y_init=None, init_samples: int | None = None, return_states: bool = False):
        """Simulate from ``x0`` (zeros by default) for inputs ``u`` of shape (T, m) or (batch, T, m).

        Returns ``y`` shaped like ``u`` with p channels; with ``return_states=True`` also the
        states ``x[0..T]`` shaped (T + 1, n) or (batch, T + 1, n). Vectorised over the batch.
        Does not change the model.

        With measured outputs ``y_init`` (shaped like ``u`` with p channels, at least
        ``init_samples`` long; the whole measured record may be passed) and ``init_samples=k``,
        the initial state is estimated from the first k samples
        (:func:`rrnn_convex.initial_state.estimate_initial_state`, the benchmark convention of
        unscored initialisation samples) and the whole record is simulated from it; score it
        from sample k on. ``x0`` and ``y_init`` exclude each other; ``init_samples`` needs
        ``y_init`` and vice versa.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
            Inputs.
        x0 : array_like, shape (n,), (1, n) or (batch, n), optional
            Initial state(s); zeros by default.
        y_init : array_like, optional
            Measured outputs to estimate the initial state from (with ``init_samples``).
        init_samples : int, optional
            How many leading samples of ``y_init`` the estimate uses.
        return_states : bool
            Also return the states.

        Returns
        -------
        y : numpy.ndarray
            Shape (T, p) or (batch, T, p), like ``u``.
        x : numpy.ndarray
            Only with ``return_states``: shape (T + 1, n) or (batch, T + 1, n).

        Raises
        ------
        ValueError
            Wrong shapes or NaN/inf (the error names the argument), or an invalid combination
            of ``x0``, ``y_init`` and ``init_samples``.
        """
        ub, batched = self.check_input(u)
        batch, T, _ = ub.shape
        if y_init is not None or init_samples is not None:
            x0 = self._estimated_x0(u, ub, x0, y_init, init_samples)
        x = initial_states(x0, batch, self.n)
        y, xs, _ = self._recursion(ub, x, keep=return_states)
        if not batched:
            y = y[0]
            xs = xs[0] if return_states else None
        return (y, xs) if return_states else y

    def trajectory(self, u, x0=None):
        """Simulate as :meth:`simulate` does and keep the states and the neurons' outputs too.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
            Inputs.
        x0 : array_like, shape (n,), (1, n) or (batch, n), optional
            Initial state(s); zeros by default.

        Returns
        -------
        y : numpy.ndarray
            Outputs, shape (T, p) or (batch, T, p), like ``u``.
        x : numpy.ndarray
            States ``x[0..T]``, shape (T + 1, n) or (batch, T + 1, n).
        w : numpy.ndarray
            The neurons' outputs at each step, shape (T, q) or (batch, T, q) (the equilibrium
            with D11).

        Raises
        ------
        ValueError
            Wrong shapes or NaN/inf (the error names the argument).
        """
        ub, batched = self.check_input(u)
        y, xs, ws = self._recursion(ub, initial_states(x0, ub.shape[0], self.n), keep=True)
        return (y, xs, ws) if batched else (y[0], xs[0], ws[0])

    def _recursion(self, ub: np.ndarray, x: np.ndarray, keep: bool):
        """(y, states or None, neurons or None) of checked inputs (batch, T, m) from states x (batch, n)."""
        batch, T, _ = ub.shape
        A, B1h, B2h, bxh = self._explicit_matrices()
        # input contributions for all times at once
        vu = ub @ self.D12.T + self.bv
        xu = ub @ B2h.T + bxh
        yu = ub @ self.D22.T + self.by
        y = np.empty((batch, T, self.p))
        xs = np.empty((batch, T + 1, self.n)) if keep else None
        ws = np.empty((batch, T, self.q)) if keep else None
        # the recursion in blocks of time: the states and neurons of a block are kept, and the
        # block's outputs come from one product afterwards (fewer small products per step)
        K = min(T, _SIMULATION_BLOCK)
        xb, wb = np.empty((batch, K, self.n)), np.empty((batch, K, self.q))
        AT, B1T, C1T = A.T.copy(), B1h.T.copy(), self.C1.T.copy()
        sigma = self.activation
        plain = self._d11.kind == "zero"
        w = None
        for t0 in range(0, T, K):
            k = min(K, T - t0)
            for j in range(k):
                xb[:, j] = x
                if plain:  # no D11: the explicit path
                    w = sigma(x @ C1T + vu[:, t0 + j])
                else:
                    w = self.neurons(x @ C1T + vu[:, t0 + j], w0=w)
                wb[:, j] = w
                x = x @ AT + w @ B1T + xu[:, t0 + j]
            y[:, t0:t0 + k] = xb[:, :k] @ self.C2.T + wb[:, :k] @ self.D21.T + yu[:, t0:t0 + k]
            if keep:
                xs[:, t0:t0 + k] = xb[:, :k]
                ws[:, t0:t0 + k] = wb[:, :k]
        if keep:
            xs[:, T] = x
        return y, xs, ws

    @property
    def d11_kind(self) -> str:
        """How ``w`` is evaluated: ``"zero"`` (no D11), ``"acyclic"`` (level by level) or ``"general"``.

        See the Notes of :class:`ImplicitRNN`. ``"general"`` models carry the multiplier that
        proves them well-posed in :attr:`well_posed_multiplier`.
        """
        return self._d11.kind

    def require_zero_d11(self, what: str) -> None:
        """Refuse a nonzero D11 in code that does not model it yet (instead of a silently wrong result).

        Parameters
        ----------
        what : str
            The operation, for the message (e.g. ``"linearize"``).

        Raises
        ------
        ValueError
            If D11 is nonzero.
        """
        if self._d11.kind != "zero":
            raise ValueError(f"model: {what} supports D11 = 0 only so far, got a nonzero D11 (kind {self._d11.kind!r}, "
                             f"max |D11| = {float(np.max(np.abs(self.D11))):.3g})")

    @property
    def neuron_levels(self) -> tuple:
        """The neurons in evaluation order: a tuple of index arrays, each a block of neurons that read
        only earlier blocks through D11 (one block of all neurons when D11 is zero; empty for a
        ``"general"`` D11)."""
        if self._d11.kind == "zero":
            return (np.arange(self.q),)
        return self._d11.levels

    def neurons(self, v0, w0=None) -> np.ndarray:
        """The neurons' outputs ``w = sigma(v0 + D11 w)`` for inputs ``v0 = C1 x + D12 u + bv`` without D11.

        Explicit for a zero or acyclic D11; for a general D11 the equilibrium solved to float64
        accuracy (see the Notes of :class:`ImplicitRNN`).

        Parameters
        ----------
        v0 : array_like, shape (q,) or (batch, q)
            The neurons' inputs without the ``D11 w`` term.
        w0 : array_like, optional
            A starting guess, shaped like ``v0`` (only used for a general D11).

        Returns
        -------
        numpy.ndarray
            ``w``, shaped like ``v0``.

        Raises
        ------
        ValueError
            ``v0`` or ``w0`` of the wrong shape, or NaN/inf.
        RuntimeError
            The equilibrium solver did not reach float64 accuracy (the residual is reported).
        """
        v0 = as_float_array(v0, "v0", ndim=(1, 2))
        single = v0.ndim == 1
        vb = v0[None] if single else v0
        if vb.shape[1] != self.q:
            raise ValueError(f"v0: expected the last axis to hold the model's q={self.q} neurons, "
                             f"got shape {v0.shape}")
        sigma, D = self.activation, self.D11
        kind = self._d11.kind
        if kind == "zero":
            w = sigma(vb)
        elif kind == "acyclic":
            w = np.zeros_like(vb)
            for idx in self._d11.levels:
                w[:, idx] = sigma(vb[:, idx] + w @ D[idx].T)
        else:
            if w0 is None:
                start = sigma(vb)
            else:
                start = as_float_array(w0, "w0", ndim=(1, 2)).reshape(-1, self.q).copy()
                if start.shape != vb.shape:
                    raise ValueError(f"w0: expected shape {v0.shape}, like v0, got {np.shape(w0)}")
            w = _solve_equilibrium(sigma, D, vb, start)
        return w[0] if single else w

    def _estimated_x0(self, u, ub, x0, y_init, init_samples) -> np.ndarray:
        """The initial states estimated from ``y_init[:init_samples]`` (see :meth:`simulate`)."""
        from .initial_state import check_init_samples, estimate_initial_state, measured_outputs

        if y_init is None:
            raise ValueError("init_samples: needs y_init, the measured outputs to estimate the initial state from")
        if init_samples is None:
            raise ValueError("y_init: needs init_samples, the number of leading samples to estimate the "
                             "initial state from")
        if x0 is not None:
            raise ValueError("x0, y_init: give either a known initial state x0 or y_init and init_samples to "
                             "estimate it, not both")
        yb = measured_outputs(self, y_init, "y_init", np.shape(u))
        k = check_init_samples(init_samples, min(ub.shape[1], yb.shape[1]))
        return estimate_initial_state(self, ub[:, :k], yb[:, :k], k)

    # ----------------------------------------------------------------- identity
    def weights_hash(self) -> str:
        """SHA-256 of the float64 weights, their shapes and the activation: names a model exactly.

        ``D11`` enters only when it is nonzero, after the other fields, so the hash of a model
        without D11 is the one it always had.

        A certificate records this hash; :meth:`Certificate.verify
        <rrnn_convex.certify.Certificate.verify>` refuses a model whose hash differs.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        h = hashlib.sha256()
        h.update(json.dumps(self.activation.to_dict(), sort_keys=True).encode())
        for name in WEIGHT_FIELDS + self._extra_fields():
            arr = np.ascontiguousarray(getattr(self, name), dtype="<f8")
            h.update(f"{name}{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def _extra_fields(self) -> tuple:
        """The optional weight fields this model has (``("D11",)`` when D11 is nonzero, else empty)."""
        return () if self._d11.kind == "zero" else ("D11",)

    # ----------------------------------------------------------------- conversions
    @classmethod
    def from_elman(cls, W, U, b=None, C=None, D=None, activation="relu") -> "ImplicitRNN":
        """The Elman RNN ``h[t+1] = sigma(W h[t] + U u[t] + b)``, ``y[t] = C h[t] + D u[t]``.

        docs/design.md section 2.4: x = h, E = I, F = 0, B1 = I, B2 = 0, C1 = W, D12 = U, bv = b,
        C2 = C, D21 = 0, D22 = D. ``C`` defaults to the identity (output = state).

        Parameters
        ----------
        W : array_like, shape (n, n)
            Recurrent weight.
        U : array_like, shape (n, m)
            Input weight.
        b : array_like, shape (n,), optional
            Bias of the neurons (zeros).
        C : array_like, shape (p, n), optional
            Readout (the identity).
        D : array_like, shape (p, m), optional
            Feedthrough (zeros).
        activation : str, dict or Activation
            ``"relu"`` by default.

        Returns
        -------
        ImplicitRNN

        Raises
        ------
        ValueError
            Inconsistent shapes (naming the argument), NaN or inf.
        """
        W, U, C, D = check_state_space(W, U, C, D, names=("W", "U", "C", "D"))
        n, m = U.shape
        return cls(E=np.eye(n), F=np.zeros((n, n)), B1=np.eye(n), B2=np.zeros((n, m)),
                   C1=W, D12=U, bv=b, C2=C, D21=np.zeros((C.shape[0], n)), D22=D, activation=activation)

    @classmethod
    def from_torch_rnn(cls, rnn, readout=None, nonlinearity: str | None = None) -> "ImplicitRNN":
        """Import a ``torch.nn.RNN`` (relu or tanh, one or more stacked layers) and its readout.

        The same import as :func:`rrnn_convex.io_models.from_torch_rnn` (one implementation):
        with one layer and a ``torch.nn.Linear`` readout (or none) the model is the Elman form
        x[t] = h_{t-1}, C1 = W_hh, D12 = W_ih, bv = b_ih + b_hh, B1 = I, F = 0, C2 = 0,
        D21 = C, by = the readout's bias, and ``D11 = 0``; stacked layers and the hidden layers
        of an MLP readout become more neurons coupled by a block-lower-triangular ``D11``.
        Simulating from ``x0 = h_0`` (for L layers: ``h_0.transpose(1, 0, 2).reshape(batch, L H)``)
        reproduces torch's outputs. Requires the ``torch`` extra.

        Parameters
        ----------
        rnn : torch.nn.RNN or dict
            The module (unidirectional, no projection) or its ``state_dict``.
        readout : torch.nn.Linear, torch.nn.Sequential, dict, list, tuple or None
            The readout, as in :func:`rrnn_convex.io_models.from_torch_rnn`; None: output =
            the last layer's hidden state.
        nonlinearity : {"relu", "tanh"}, optional
            Overrides the module's; needed for a state_dict (default "tanh", torch's default).

        Returns
        -------
        ImplicitRNN

        Raises
        ------
        rrnn_convex.errors.MissingDependency
            torch is not installed (an ImportError).
        ValueError
            An unsupported module (bidirectional, proj_size, LSTM, GRU), an unknown
            nonlinearity, a readout activation other than the RNN's, missing or unexpected
            keys, or shapes that do not fit.
        """
        return cls(**torch_rnn_weights(
            rnn, readout, nonlinearity,
            hint="from_torch_rnn needs PyTorch: install it with `pip install rrnn_convex[torch]` "
                 "(on this project's machines: `pip install torch==2.13.0`)"))

    def to_torch(self):
        """The model as a ``torch.nn.Module`` (float64, batch-first, explicit initial state).

        The module holds the explicit form (docs/design.md section 2.2) as float64 parameters
        ``A, B1, B2, bx`` (``E^-1 F``, ``E^-1 B1``, ...), ``C1, D11, D12, bv, C2, D21, D22, by``
        and computes, for ``u`` of shape (batch, T, m) and ``x0`` of shape (batch, n) (zeros
        when omitted), ``forward(u, x0) -> (y, x_T)`` with ``y`` of shape (batch, T, p) and the
        final state ``x_T`` of shape (batch, n), the outputs of :meth:`simulate` (to rounding).
        The neurons are evaluated as in :meth:`neurons`: directly for a zero D11, level by
        level for an acyclic one (both differentiable by autograd), and for a general D11 by
        solving the equilibrium in float64 with the same solver (from the current parameter
        values, without gradient) followed by one Newton correction
        ``w = w* - J^-1 (w* - sigma(v0 + D11 w*))``, ``J = I - diag(sigma'(v)) D11`` held
        constant, whose value is ``w*`` and whose gradient is the implicit-function one. Needs
        the ``torch`` extra.

        Returns
        -------
        torch.nn.Module
            A new module; changing its parameters does not change this model.

        Raises
        ------
        rrnn_convex.errors.MissingDependency
            torch is not installed (an ImportError).
        """
        try:
            import torch
        except ImportError:
            from .errors import MissingDependency
            raise MissingDependency(
                "to_torch needs PyTorch: install it with `pip install rrnn_convex[torch]` "
                "(on this project's machines: `pip install torch==2.13.0`)") from None
        return _torch_module(torch, self)

    # ----------------------------------------------------------------- files
    def save(self, path, *, meta: dict | None = None) -> Path:
        """Write the model to ``path`` (``.npz``) atomically; returns the path written.

        A nonzero ``D11`` is stored as the entry ``D11`` with format version
        ``NPZ_FORMAT_VERSION_D11`` (2), which older versions of the package refuse; models
        without D11 are written exactly as before (version 1, no ``D11`` entry).

        ``meta``: an optional JSON-serialisable dict describing the model's use, e.g.
        ``{"inputs": ["u"], "outputs": ["y"], "scaling": {...}, "ts": 4.0, "init_samples": 50}``
        (numpy arrays and scalars are converted to lists and numbers; NaN/inf are refused). It
        is stored as the extra entry ``meta`` (a JSON string), read back by :meth:`read_meta`;
        it is not a weight, so :meth:`load` and :meth:`weights_hash` ignore it.

        Parameters
        ----------
        path : str or os.PathLike
            The file; ``.npz`` is appended when the suffix is different.
        meta : dict, optional
            Metadata as described above.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        TypeError
            ``meta`` is not a dict.
        ValueError
            ``meta`` is not JSON-serialisable (or holds NaN/inf).
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        extra = self._extra_fields()
        payload = {name: np.asarray(getattr(self, name)) for name in WEIGHT_FIELDS + extra}
        payload["activation"] = np.array(json.dumps(self.activation.to_dict()))
        payload["kind"] = np.array("rrnn_convex.ImplicitRNN")
        payload["format_version"] = np.array(NPZ_FORMAT_VERSION_D11 if extra else NPZ_FORMAT_VERSION)
        if meta is not None:
            payload["meta"] = np.array(_meta_json(meta))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)
        return path

    @staticmethod
    def _open_file(path):
        """The opened ``.npz`` of a model file (checked kind and version); use it as a context manager."""
        path = check_input_file(path, "path")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # zipfile / format errors
            raise ValueError(f"path: {str(path)!r} is not a readable .npz file ({exc})") from None
        if not hasattr(data, "files") or "kind" not in data or str(data["kind"]) != "rrnn_convex.ImplicitRNN":
            keys = sorted(data.files) if hasattr(data, "files") else "a single array"
            if hasattr(data, "close"):
                data.close()
            raise ValueError(f"path: {str(path)!r} is not an rrnn_convex ImplicitRNN file (keys: {keys})")
        problem = ""
        if "format_version" not in data.files:
            problem = "has no 'format_version' entry"
        else:
            v = data["format_version"]
            if v.shape != () or v.dtype.kind not in "iu" or int(v) < 1:
                problem = f"has a 'format_version' that is not a positive integer: {v.tolist()!r}"
            elif int(v) > NPZ_FORMAT_VERSION_D11:
                problem = (f"has file format version {int(v)}, newer than this package supports "
                           f"({NPZ_FORMAT_VERSION_D11})")
        if problem:
            data.close()
            raise ValueError(f"path: {str(path)!r} {problem}")
        return data

    @classmethod
    def load(cls, path) -> "ImplicitRNN":
        """Read a model written by :meth:`save` (its ``meta``, if any, is ignored: see :meth:`read_meta`).

        A file without a ``D11`` entry (every file of version 1) is a model with ``D11 = 0``.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        ImplicitRNN

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            A directory, not a readable ``.npz``, not an rrnn_convex model file, a newer file
            format, missing entries or invalid weights.
        """
        with cls._open_file(path) as data:
            missing = [name for name in WEIGHT_FIELDS + ("activation",) if name not in data.files]
            if missing:
                raise ValueError(f"path: {str(path)!r} is missing the entries {missing} of an ImplicitRNN file")
            try:
                kwargs = {name: data[name] for name in WEIGHT_FIELDS}
                kwargs |= {name: data[name] for name, _, _ in OPTIONAL_MATRIX_SHAPES if name in data.files}
            except ValueError as exc:  # object arrays need pickle
                raise ValueError(f"path: {str(path)!r} holds arrays that need pickle to read ({exc})") from None
            text = str(data["activation"])
        try:
            activation = json.loads(text)
        except json.JSONDecodeError:
            activation = None
        if not isinstance(activation, dict):
            raise ValueError(f"path: {str(path)!r}: the 'activation' entry is not a JSON object such as "
                             f'{{"name": "relu", ...}}, got {text[:80]!r}')
        try:
            return cls(**kwargs, activation=activation)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"path: {str(path)!r}: {exc}") from None

    @classmethod
    def read_meta(cls, path) -> dict:
        """The ``meta`` dict stored by :meth:`save` in a model file; ``{}`` for a file without one.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        dict

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            Not an ImplicitRNN model file, or a ``meta`` entry that is not a JSON object.
        """
        with cls._open_file(path) as data:
            if "meta" not in data.files:
                return {}
            text = str(data["meta"])
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"path: the 'meta' entry of {str(path)!r} is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"path: the 'meta' entry of {str(path)!r} is not a JSON object "
                             f"(got a {type(meta).__name__})")
        return meta

    def __eq__(self, other):
        if not isinstance(other, ImplicitRNN):
            return NotImplemented
        return self.activation == other.activation and all(
            np.array_equal(getattr(self, k), getattr(other, k))
            for k in WEIGHT_FIELDS + tuple(name for name, _, _ in OPTIONAL_MATRIX_SHAPES))


def _meta_json(meta) -> str:
    """``meta`` (a dict with string keys) as a JSON string; numpy values converted, NaN/inf refused."""
    if not isinstance(meta, dict):
        raise TypeError(f"meta: expected a dict, got {type(meta).__name__}")

    def convert(obj):
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.dumps(meta, default=convert, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta: expected a JSON-serialisable dict (str keys; numbers, strings, lists, dicts; "
                         f"no NaN/inf), got {meta!r:.200} ({exc})") from None


# ---------------------------------------------------------------------- the equilibrium layer (D11)
#: a multiplier proves D11 well-posed when :func:`well_posedness_margin` exceeds this (scale-free;
#: far above the rounding of the float64 eigenvalue computation, about 1e-16)
MIN_WELL_POSEDNESS_MARGIN = 1e-9
#: the accepted fixed-point residual of a general D11's equilibrium, in units of float64's
#: rounding of the neurons' input ``v`` (eps times ``1 + max |C1 x + D12 u + bv| + |D11| |w|``)
EQUILIBRIUM_TOL_ULPS = 64
_EPS = np.finfo(np.float64).eps
_NEWTON_ITER = 50
_SPLITTING_ITER = 20000


def well_posedness_margin(D11, lam) -> float:
    """How well a diagonal multiplier proves ``w = sigma(v0 + D11 w)`` well-posed.

    With ``K = Lambda^(1/2) (I - D11) Lambda^(-1/2)`` the margin is
    ``lambda_min((K + K') / 2) / ||K||_2``: positive exactly when
    ``2 Lambda - Lambda D11 - D11' Lambda > 0``, and scale-free (at most 1). It is also the
    ratio of strong monotonicity to Lipschitz constant of ``w -> (I - D11) w`` in the Lambda
    metric.

    Parameters
    ----------
    D11 : array_like, shape (q, q)
    lam : array_like, shape (q,)
        The diagonal of Lambda.

    Returns
    -------
    float
        The margin; ``-inf`` when ``lam`` has a non-positive or non-finite entry.
    """
    D = np.asarray(D11, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64).reshape(-1)
    if lam.shape != (D.shape[0],) or not np.all(np.isfinite(lam)) or not np.all(lam > 0):
        return -np.inf
    s = np.sqrt(lam / np.max(lam))
    K = s[:, None] * (np.eye(D.shape[0]) - D) / s[None, :]
    norm = np.linalg.norm(K, 2)
    if not np.isfinite(norm) or norm == 0:
        return -np.inf
    return float(np.linalg.eigvalsh(0.5 * (K + K.T))[0] / norm)


def find_well_posed_multiplier(D11) -> np.ndarray | None:
    """A diagonal ``Lambda > 0`` with ``2 Lambda - Lambda D11 - D11' Lambda > 0``, or None.

    Solves the small SDP "maximise t subject to ``2 Lambda - Lambda D11 - D11' Lambda >= t I``,
    ``trace(Lambda) = q``, ``Lambda >= 1e-6``" with cvxpy (Clarabel, then SCS), and returns its
    Lambda only if :func:`well_posedness_margin` confirms it in float64.

    Parameters
    ----------
    D11 : array_like, shape (q, q)

    Returns
    -------
    numpy.ndarray or None
        The diagonal of Lambda (shape (q,)), or None when the SDP finds none.
    """
    import cvxpy as cp

    from . import solvers as _solvers  # (lazy, like cvxpy: simulation does not need them)

    D = np.asarray(D11, dtype=np.float64)
    q = D.shape[0]
    lam = cp.Variable(q)
    t = cp.Variable()
    L = cp.diag(lam)
    S = cp.Variable((q, q), symmetric=True)
    M = 2 * L - L @ D - D.T @ L
    cons = [S == 0.5 * (M + M.T) - t * np.eye(q), S >> 0, lam >= 1e-6, cp.sum(lam) == q, t <= 1.0]
    prob = cp.Problem(cp.Maximize(t), cons)
    for solver in ("CLARABEL", "SCS"):
        att = _solvers.run(prob, solver)  # time-limited; a missing or failing solver is an Attempt, not a raise
        if lam.value is not None and att.status in ("optimal", "optimal_inaccurate"):
            cand = np.maximum(np.asarray(lam.value, dtype=np.float64), 1e-12)
            if well_posedness_margin(D, cand) > MIN_WELL_POSEDNESS_MARGIN:
                return cand
    return None


def _acyclic_levels(D11: np.ndarray):
    """The neurons as blocks that read only earlier blocks through D11, or None if they form a cycle."""
    reads = D11 != 0
    left = np.ones(D11.shape[0], dtype=bool)
    levels = []
    while left.any():
        ready = left & ~(reads & left[None, :]).any(axis=1)
        if not ready.any():
            return None
        levels.append(np.flatnonzero(ready))
        left &= ~ready
    return tuple(levels)


@dataclass(frozen=True)
class _D11Structure:
    """How a model's neurons are evaluated (see the Notes of :class:`ImplicitRNN`)."""

    kind: str                      # "zero", "acyclic" or "general"
    levels: tuple = ()             # "acyclic": blocks of neurons in evaluation order
    lam: np.ndarray | None = None  # "general": the multiplier that proves well-posedness

    @classmethod
    def of(cls, D11: np.ndarray, given) -> "_D11Structure":
        if not D11.any():
            return cls("zero")
        levels = _acyclic_levels(D11)
        if levels is not None:
            return cls("acyclic", levels=levels)
        tried = []
        candidates = [] if given is None else [("the given well_posed_multiplier", lambda: given)]
        candidates += [("Lambda = I", lambda: np.ones(D11.shape[0])),
                       ("an SDP for Lambda (find_well_posed_multiplier)",
                        lambda: find_well_posed_multiplier(D11))]
        for what, make in candidates:
            lam = make()
            if lam is None:
                tried.append(f"{what}: none found")
                continue
            margin = well_posedness_margin(D11, lam)
            if margin > MIN_WELL_POSEDNESS_MARGIN:
                return cls("general", lam=np.array(lam, dtype=np.float64))
            tried.append(f"{what}: margin {margin:.3g}")
        raise ValueError(
            f"D11: the equilibrium w = sigma(C1 x + D11 w + D12 u + bv) is not known to be well-posed: "
            f"D11 is not strictly lower triangular in any order of the neurons (they read each other in a "
            f"cycle), and no diagonal Lambda > 0 with 2 Lambda - Lambda D11 - D11' Lambda > 0 was found "
            f"(tried {'; '.join(tried)}; a margin > {MIN_WELL_POSEDNESS_MARGIN:g} is needed, see "
            f"well_posedness_margin). Without it the equilibrium may not exist or not be unique. Pass "
            f"well_posed_multiplier= a Lambda that proves it, or change D11.")


def _fixed_point_residual(sigma, D, v0, w):
    """``w - sigma(v0 + D w)`` row by row, with ``v``."""
    v = v0 + w @ D.T
    return w - sigma(v), v


def _equilibrium_tolerance(D, v0, w):
    """The accepted residual per row: EQUILIBRIUM_TOL_ULPS roundings of ``v = v0 + D w``."""
    return EQUILIBRIUM_TOL_ULPS * _EPS * (1.0 + np.max(np.abs(v0) + np.abs(w) @ np.abs(D).T, axis=1))


def _newton(sigma, D, v0, w):
    """Semismooth Newton steps on ``w - sigma(v0 + D w) = 0`` with a backtracking line search:
    each row takes the longest of the steps 1, 1/2, ..., 1/2^10 that lowers its residual, and
    stops when none does."""
    r, v = _fixed_point_residual(sigma, D, v0, w)
    rn = np.max(np.abs(r), axis=1)
    active = np.ones(len(w), dtype=bool)
    eye = np.eye(D.shape[0])
    for _ in range(_NEWTON_ITER):
        active &= rn > _equilibrium_tolerance(D, v0, w)
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        J = eye - sigma.derivative(v[rows])[:, :, None] * D[None]
        try:
            step = np.linalg.solve(J, r[rows][..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        todo = np.ones(rows.size, dtype=bool)
        for t in 0.5 ** np.arange(11):
            sel = np.flatnonzero(todo)
            wn = w[rows[sel]] - t * step[sel]
            rn_new, vn = _fixed_point_residual(sigma, D, v0[rows[sel]], wn)
            nn = np.max(np.abs(rn_new), axis=1)
            better = np.isfinite(nn) & (nn < rn[rows[sel]])
            idx = rows[sel[better]]
            w[idx], r[idx], v[idx], rn[idx] = wn[better], rn_new[better], vn[better], nn[better]
            todo[sel[better]] = False
            if not todo.any():
                break
        active[rows[todo]] = False
    return w, rn


def _splitting(sigma, D, v0, w, target, max_iter):
    """Douglas-Rachford splitting for ``0 in (sigma^-1 - I)(w) + (I - D) w - v0`` (unit step).

    Both operators are monotone in the inner product weighted by a Lambda that proves
    well-posedness (the first is diagonal), the second strongly, so the iteration converges from
    any start whatever Lambda is (it is not needed to run it). With unit step the two resolvents
    are ``z -> (2I - D)^-1 (z + v0)`` and ``sigma`` itself. Runs until the iterates move by at
    most ``target`` (per row) or ``max_iter`` iterations.
    """
    M = np.linalg.inv(2.0 * np.eye(D.shape[0]) - D).T
    z = w @ (2.0 * np.eye(D.shape[0]) - D).T - v0
    for _ in range(max_iter):
        w = (z + v0) @ M
        y = sigma(2.0 * w - z)
        moved = np.max(np.abs(y - w), axis=1)
        z = z + y - w
        if np.all(moved <= target):
            break
    return (z + v0) @ M


def _solve_equilibrium(sigma, D, v0, w):
    """``w = sigma(v0 + D w)`` per row to float64 accuracy (the Notes of :class:`ImplicitRNN`).

    Newton with a line search first; rows where it stalls go through Douglas-Rachford
    splitting (globally convergent), first to about sqrt(eps) and then to the tolerance, each
    stage followed by Newton polishing.
    """
    w, rn = _newton(sigma, D, v0, w)
    for stage in (np.sqrt(_EPS), _EPS):
        bad = np.flatnonzero(rn > _equilibrium_tolerance(D, v0, w))
        if bad.size == 0:
            return w
        vb = v0[bad]
        size = np.max(np.abs(vb), axis=1) + np.max(np.abs(w[bad]), axis=1) * np.abs(D).sum(1).max()
        target = stage * (1.0 + size)
        wb = _splitting(sigma, D, vb, w[bad], target, _SPLITTING_ITER)
        wb, rnb = _newton(sigma, D, vb, wb)
        w[bad], rn[bad] = wb, rnb
    tol = _equilibrium_tolerance(D, v0, w)
    if np.any(rn > tol):
        worst = int(np.argmax(rn / tol))
        raise RuntimeError(
            f"D11: the equilibrium w = sigma(C1 x + D11 w + D12 u + bv) was not solved to float64 accuracy: "
            f"fixed-point residual {rn[worst]:.3g} > {tol[worst]:.3g} (Newton with a line search, then up to "
            f"{_SPLITTING_ITER} Douglas-Rachford iterations, twice)")
    return w


# ---------------------------------------------------------------------- torch export
def _torch_activation(torch, act: Activation):
    """The activation as a function of torch tensors."""
    if act.name == "relu":
        return torch.relu
    if act.name == "tanh":
        return torch.tanh
    if act.name == "sigmoid":
        return lambda v: 0.5 * (1.0 + torch.tanh(0.5 * v))  # as the numpy version computes it
    if act.name == "leaky_relu":
        return lambda v: torch.where(v >= 0.0, v, act.slope * v)
    if act.name == "identity":
        return lambda v: v
    raise ValueError(f"activation: unknown name {act.name!r}")


def _torch_module(torch, model: "ImplicitRNN"):
    """The ``torch.nn.Module`` of :meth:`ImplicitRNN.to_torch`."""
    nn = torch.nn
    A, B1h, B2h, bxh = model._explicit_matrices()
    arrays = {"A": A, "B1": B1h, "B2": B2h, "bx": bxh, "C1": model.C1, "D11": model.D11, "D12": model.D12,
              "bv": model.bv, "C2": model.C2, "D21": model.D21, "D22": model.D22, "by": model.by}
    activation, kind = model.activation, model.d11_kind
    levels = [torch.as_tensor(level, dtype=torch.long) for level in model.neuron_levels]
    order = torch.as_tensor(np.argsort(np.concatenate(model.neuron_levels)) if levels else np.arange(model.q))

    class ImplicitRNNModule(nn.Module):
        """An :class:`~rrnn_convex.model.ImplicitRNN` in explicit form; see ``ImplicitRNN.to_torch``."""

        def __init__(self):
            super().__init__()
            for name, value in arrays.items():
                tensor = torch.tensor(np.array(value), dtype=torch.float64)
                self.register_parameter(name, nn.Parameter(tensor))
            self.sigma = _torch_activation(torch, activation)
            self.n, self.q, self.m, self.p = model.n, model.q, model.m, model.p

        def neurons(self, v0, w_prev=None):
            """w = sigma(v0 + D11 w) for v0 of shape (batch, q)."""
            if kind == "zero":
                return self.sigma(v0)
            if kind == "acyclic":
                parts, done = [], []
                for idx in levels:
                    v = v0[:, idx]
                    if done:
                        prev = torch.cat(done)
                        v = v + torch.cat(parts, dim=1) @ self.D11[idx][:, prev].T
                    parts.append(self.sigma(v))
                    done.append(idx)
                return torch.cat(parts, dim=1)[:, order]
            D = self.D11.detach().cpu().numpy()
            v0n = v0.detach().cpu().numpy()
            start = activation(v0n) if w_prev is None else w_prev.detach().cpu().numpy().copy()
            w_star = _solve_equilibrium(activation, D, v0n, start)
            J = np.eye(self.q) - activation.derivative(v0n + w_star @ D.T)[:, :, None] * D[None]
            ws = torch.as_tensor(w_star, dtype=v0.dtype)
            r = ws - self.sigma(v0 + ws @ self.D11.T)
            return ws - torch.linalg.solve(torch.as_tensor(J, dtype=v0.dtype), r.unsqueeze(-1)).squeeze(-1)

        def forward(self, u, x0=None):
            """Outputs (batch, T, p) and the final state (batch, n) for inputs u (batch, T, m)."""
            u = torch.as_tensor(u, dtype=torch.float64)
            if u.dim() != 3 or u.shape[2] != self.m:
                raise ValueError(f"u: expected shape (batch, T, {self.m}), got {tuple(u.shape)}")
            batch, T, _ = u.shape
            x = torch.zeros(batch, self.n, dtype=torch.float64) if x0 is None else \
                torch.as_tensor(x0, dtype=torch.float64).expand(batch, self.n)
            vu = u @ self.D12.T + self.bv
            xu = u @ self.B2.T + self.bx
            yu = u @ self.D22.T + self.by
            ys, w = [], None
            for t in range(T):
                w = self.neurons(x @ self.C1.T + vu[:, t], w)
                ys.append(x @ self.C2.T + w @ self.D21.T + yu[:, t])
                x = x @ self.A.T + w @ self.B1.T + xu[:, t]
            y = torch.stack(ys, dim=1) if ys else torch.zeros(batch, 0, self.p, dtype=torch.float64)
            return y, x

    return ImplicitRNNModule()
