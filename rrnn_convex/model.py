"""The implicit RNN of docs/design.md section 2: a linear system in feedback with an activation.

    E x[t+1] = F x[t] + B1 w[t] + B2 u[t] + bx
    y[t]     = C2 x[t] + D21 w[t] + D22 u[t] + by
    v[t]     = C1 x[t] + D12 u[t] + bv,      w[t] = sigma(v[t])

States x in R^n, inputs u in R^m, outputs y in R^p, q neurons. ``E`` must be invertible.
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
from .shapes import BIAS_SHAPES, MATRIX_SHAPES, WEIGHT_FIELDS

NPZ_FORMAT_VERSION = 1

#: E is rejected as singular above this condition number (float64 solves lose all digits there)
MAX_COND_E = 1e12


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

    Raises
    ------
    ValueError
        A wrong shape (naming the field, the expected and the received shape), NaN or inf, no
        state (n = 0), a singular or numerically singular ``E``, or an unknown activation.
    TypeError
        A weight that is not an array of real numbers (complex, boolean, strings).
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
    _explicit: tuple = field(default=None, init=False, repr=False, compare=False)

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
            value = getattr(self, name)
            expected = (dims[r], dims[c])
            if value is None:
                arr = defaults.get(name, lambda: np.zeros(expected))()
            else:
                arr = as_float_array(value, name, ndim=2)
                if arr.shape != expected:
                    raise ValueError(
                        f"{name}: expected shape {expected} ({r}={dims[r]}, {c}={dims[c]}), got {arr.shape}")
            arr.setflags(write=False)
            set_(name, arr)
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
            Field name (``WEIGHT_FIELDS``, in storage order) -> read-only float64 array.
        """
        return {name: getattr(self, name) for name in WEIGHT_FIELDS}

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
            The explicit form; C1, D12, C2, D21, D22, bv, by and the activation unchanged.
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
        A, B1h, B2h, bxh = self._explicit_matrices()
        sigma = self.activation
        y = np.empty((batch, T, self.p))
        xs = np.empty((batch, T + 1, self.n)) if return_states else None
        # input contributions for all times at once; the recursion then costs two small matmuls
        vu = ub @ self.D12.T + self.bv
        xu = ub @ B2h.T + bxh
        yu = ub @ self.D22.T + self.by
        for t in range(T):
            if return_states:
                xs[:, t] = x
            w = sigma(x @ self.C1.T + vu[:, t])
            y[:, t] = x @ self.C2.T + w @ self.D21.T + yu[:, t]
            x = x @ A.T + w @ B1h.T + xu[:, t]
        if return_states:
            xs[:, T] = x
        if not batched:
            y = y[0]
            xs = xs[0] if return_states else None
        return (y, xs) if return_states else y

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

        A certificate records this hash; :meth:`Certificate.verify
        <rrnn_convex.certify.Certificate.verify>` refuses a model whose hash differs.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        h = hashlib.sha256()
        h.update(json.dumps(self.activation.to_dict(), sort_keys=True).encode())
        for name in WEIGHT_FIELDS:
            arr = np.ascontiguousarray(getattr(self, name), dtype="<f8")
            h.update(f"{name}{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

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
        """Import a one-layer ``torch.nn.RNN`` (relu or tanh), with an optional linear readout.

        ``rnn`` is the module or its ``state_dict``; ``readout`` a ``torch.nn.Linear``, its
        state_dict, a pair ``(C, by)`` of arrays, or None (output = hidden state). torch computes
        ``h_t = sigma(W_ih u_t + b_ih + W_hh h_{t-1} + b_hh)`` and the readout acts on ``h_t``, so
        the implicit form is x[t] = h_{t-1}, C1 = W_hh, D12 = W_ih, bv = b_ih + b_hh, B1 = I,
        F = 0, C2 = 0, D21 = C, by = readout bias. Simulating from ``x0 = h_0`` reproduces
        torch's outputs. Requires the ``torch`` extra.

        Parameters
        ----------
        rnn : torch.nn.RNN or dict
            The module or its ``state_dict`` (one layer, unidirectional, no projection).
        readout : torch.nn.Linear, dict, tuple or None
            The readout, its state_dict, a pair ``(C, by)``, or None (output = hidden state).
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
            An unsupported module (several layers, bidirectional, proj_size), an unknown
            nonlinearity, missing or unexpected keys, or shapes that do not fit.
        """
        try:
            import torch  # noqa: F401
        except ImportError:
            from .errors import MissingDependency
            raise MissingDependency(
                "from_torch_rnn needs PyTorch: install it with `pip install rrnn_convex[torch]` "
                "(on this project's machines: `pip install torch==2.13.0`)") from None
        if hasattr(rnn, "state_dict"):
            if getattr(rnn, "num_layers", 1) != 1 or getattr(rnn, "bidirectional", False):
                raise ValueError("rnn: only one-layer, unidirectional torch.nn.RNN modules are supported")
            if getattr(rnn, "proj_size", 0):
                raise ValueError("rnn: torch.nn.RNN with proj_size is not supported")
            nonlinearity = nonlinearity or rnn.nonlinearity
            sd = rnn.state_dict()
        else:
            sd = rnn
            nonlinearity = nonlinearity or "tanh"
        if nonlinearity not in ("relu", "tanh"):
            raise ValueError(f"nonlinearity: torch.nn.RNN supports 'relu' or 'tanh', got {nonlinearity!r}")
        extra = sorted(k for k in sd if not k.endswith("_l0"))
        if extra:
            raise ValueError(f"rnn: expected a one-layer nn.RNN state_dict (keys *_l0), got extra keys {extra}")

        def arr(x, name):
            if hasattr(x, "detach"):
                x = x.detach().cpu().double().numpy()
            return as_float_array(x, name)

        if "weight_hh_l0" not in sd or "weight_ih_l0" not in sd:
            raise ValueError(f"rnn: state_dict lacks weight_hh_l0 / weight_ih_l0 (keys: {sorted(sd)})")
        W = arr(sd["weight_hh_l0"], "weight_hh_l0")
        U = arr(sd["weight_ih_l0"], "weight_ih_l0")
        n, m = W.shape[0], U.shape[1]
        b = np.zeros(n)
        for key in ("bias_ih_l0", "bias_hh_l0"):
            if key in sd:
                b = b + arr(sd[key], key)
        if readout is None:
            C, by = np.eye(n), np.zeros(n)
        elif isinstance(readout, (tuple, list)):
            C = arr(readout[0], "readout[0] (C)")
            by = np.zeros(C.shape[0]) if len(readout) < 2 or readout[1] is None else arr(readout[1], "readout[1] (by)")
        else:
            rsd = readout.state_dict() if hasattr(readout, "state_dict") else readout
            if "weight" not in rsd:
                raise ValueError(f"readout: expected a torch.nn.Linear or its state_dict, got keys {sorted(rsd)}")
            C = arr(rsd["weight"], "readout.weight")
            by = arr(rsd["bias"], "readout.bias") if rsd.get("bias") is not None else np.zeros(C.shape[0])
        if C.ndim != 2 or C.shape[1] != n:
            raise ValueError(f"readout: expected a weight of shape (p, {n}), got {C.shape}")
        p = C.shape[0]
        return cls(E=np.eye(n), F=np.zeros((n, n)), B1=np.eye(n), B2=np.zeros((n, m)),
                   C1=W, D12=U, bv=b, C2=np.zeros((p, n)), D21=C, D22=np.zeros((p, m)), by=by,
                   activation=nonlinearity)

    # ----------------------------------------------------------------- files
    def save(self, path, *, meta: dict | None = None) -> Path:
        """Write the model to ``path`` (``.npz``) atomically; returns the path written.

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
        payload = {name: np.asarray(getattr(self, name)) for name in WEIGHT_FIELDS}
        payload["activation"] = np.array(json.dumps(self.activation.to_dict()))
        payload["kind"] = np.array("rrnn_convex.ImplicitRNN")
        payload["format_version"] = np.array(NPZ_FORMAT_VERSION)
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
            elif int(v) > NPZ_FORMAT_VERSION:
                problem = f"has file format version {int(v)}, newer than this package supports ({NPZ_FORMAT_VERSION})"
        if problem:
            data.close()
            raise ValueError(f"path: {str(path)!r} {problem}")
        return data

    @classmethod
    def load(cls, path) -> "ImplicitRNN":
        """Read a model written by :meth:`save` (its ``meta``, if any, is ignored: see :meth:`read_meta`).

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
            np.array_equal(getattr(self, k), getattr(other, k)) for k in WEIGHT_FIELDS)


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
