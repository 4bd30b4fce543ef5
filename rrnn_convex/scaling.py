"""Per-channel affine normalisation of inputs and outputs, and the model in physical units.

Models are usually fitted to normalised signals

    u_n = Su^-1 (u - mu_u),        y = Sy y_n + mu_y,

with Su = diag(u_scale) and Sy = diag(y_scale) positive. A model ``model_n`` that maps u_n to
y_n is, in physical units (u to y), the implicit RNN with

    B2 Su^-1,  D12 Su^-1,  Sy C2,  Sy D21,  Sy D22 Su^-1,
    bx - B2 Su^-1 mu_u,  bv - D12 Su^-1 mu_u,  Sy (by - D22 Su^-1 mu_u) + mu_y,

and E, F, B1, C1 unchanged: the state is the same in both, so an initial state carries over.

What a certificate says depends on the units. Contraction does not: the states, and so the
metric of the contraction LMI, are the same in both models. The incremental l2 gain does:
du = Su du_n and dy = Sy dy_n, so the physical gain of a linear model is the H-infinity norm of
Sy G Su^-1, not that of G. The physical model's gain LMI, written in the normalised weights, has
only those weights multiplied by the constant diagonal matrices above
(:meth:`ChannelScaling.physical_weights`); it stays linear in the weights and in gamma, so
"gain <= gamma in physical units" is a convex constraint on the normalised weights
(:class:`rrnn_convex.sets.GainBounded` with ``scaling=``). See docs/design.md section 3.9.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._validation import as_float_array, paired_sequences
from .model import ImplicitRNN

_FIELDS = ("u_mean", "u_scale", "y_mean", "y_scale")

#: a channel whose population std is at most this fraction of its largest magnitude is constant
#: up to rounding (the std of a constant channel is not always exactly 0 in floating point)
CONSTANT_CHANNEL_RTOL = 1e-12


@dataclass(frozen=True, eq=False)
class ChannelScaling:
    """Per-channel affine maps ``u_n = (u - u_mean) / u_scale`` and ``y = y_scale * y_n + y_mean``.

    Parameters
    ----------
    u_mean, u_scale : array_like, shape (m,)
        Offset and (positive, finite) scale of each input channel.
    y_mean, y_scale : array_like, shape (p,)
        Offset and (positive, finite) scale of each output channel.

    Raises
    ------
    ValueError
        A field that is not 1-D, a scale whose length differs from its mean's, a NaN or inf, or
        a scale that is not > 0; the message names the field, the expected shape and what was
        received.
    TypeError
        A field that is not an array of real numbers.

    Notes
    -----
    The fields are stored as read-only float64 arrays; use :func:`dataclasses.replace` to change
    one. Two scalings are equal when their values are.
    """

    u_mean: np.ndarray
    u_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray

    def __post_init__(self):
        for mean, scale, c in (("u_mean", "u_scale", "m"), ("y_mean", "y_scale", "p")):
            mu = as_float_array(getattr(self, mean), mean, ndim=1)
            s = as_float_array(getattr(self, scale), scale, ndim=1)
            if s.shape != mu.shape:
                raise ValueError(f"{scale}: expected shape ({c},) = {mu.shape} (the length of {mean}), "
                                 f"got {s.shape}")
            if np.any(s <= 0):
                i = int(np.argmax(s <= 0))
                raise ValueError(f"{scale}: expected every entry > 0, got {float(s[i])!r} at index {i}")
            for name, arr in ((mean, mu), (scale, s)):
                arr.setflags(write=False)
                object.__setattr__(self, name, arr)

    # ----------------------------------------------------------------- construction
    @classmethod
    def fit(cls, u, y) -> "ChannelScaling":
        """Mean and population standard deviation of each channel over all sequences and samples.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
            Input sequences.
        y : array_like, shape (T, p) or (batch, T, p)
            Output sequences (same batch and T as ``u``).

        Returns
        -------
        ChannelScaling
            ``u_mean``/``y_mean`` the channel means, ``u_scale``/``y_scale`` the channel
            standard deviations (``ddof=0``). A channel that is constant (std zero, or within
            ``CONSTANT_CHANNEL_RTOL`` of its largest magnitude, i.e. zero up to rounding) gets
            scale 1.0, so it is only shifted, never divided by ~0.

        Raises
        ------
        ValueError
            Arrays that are not 2-D or 3-D, disagree in (batch, T), hold no sample, or contain
            NaN/inf.
        """
        U, Y = paired_sequences(u, y)
        if U.shape[0] * U.shape[1] == 0:
            raise ValueError(f"u, y: expected at least one sample, got shapes {U.shape} and {Y.shape}")
        return cls(*_mean_scale(U), *_mean_scale(Y))

    @classmethod
    def identity(cls, m: int, p: int) -> "ChannelScaling":
        """The scaling that changes nothing: zero means, unit scales, ``m`` inputs, ``p`` outputs.

        Parameters
        ----------
        m, p : int
            Numbers of input and output channels (non-negative).

        Returns
        -------
        ChannelScaling

        Raises
        ------
        ValueError
            ``m`` or ``p`` is not a non-negative integer.
        """
        m, p = _count(m, "m"), _count(p, "p")
        return cls(np.zeros(m), np.ones(m), np.zeros(p), np.ones(p))

    # ----------------------------------------------------------------- dimensions
    @property
    def m(self) -> int:
        """Number of input channels."""
        return self.u_mean.shape[0]

    @property
    def p(self) -> int:
        """Number of output channels."""
        return self.y_mean.shape[0]

    # ----------------------------------------------------------------- signals
    def normalize_inputs(self, u) -> np.ndarray:
        """``u_n = (u - u_mean) / u_scale`` per channel.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)

        Returns
        -------
        numpy.ndarray
            Same shape as ``u``.

        Raises
        ------
        ValueError
            Wrong dimensionality, last axis not ``m``, or NaN/inf.
        """
        return (self._signal(u, "u", self.m, "m") - self.u_mean) / self.u_scale

    def denormalize_inputs(self, un) -> np.ndarray:
        """Inverse of :meth:`normalize_inputs`: ``u = u_scale * u_n + u_mean``, same shapes.

        Parameters
        ----------
        un : array_like, shape (T, m) or (batch, T, m)

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ValueError
            As :meth:`normalize_inputs`.
        """
        return self._signal(un, "un", self.m, "m") * self.u_scale + self.u_mean

    def normalize_outputs(self, y) -> np.ndarray:
        """``y_n = (y - y_mean) / y_scale`` per channel.

        Parameters
        ----------
        y : array_like, shape (T, p) or (batch, T, p)

        Returns
        -------
        numpy.ndarray
            Same shape as ``y``.

        Raises
        ------
        ValueError
            Wrong dimensionality, last axis not ``p``, or NaN/inf.
        """
        return (self._signal(y, "y", self.p, "p") - self.y_mean) / self.y_scale

    def denormalize_outputs(self, yn) -> np.ndarray:
        """Inverse of :meth:`normalize_outputs`: ``y = y_scale * y_n + y_mean``, same shapes.

        Parameters
        ----------
        yn : array_like, shape (T, p) or (batch, T, p)

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ValueError
            As :meth:`normalize_outputs`.
        """
        return self._signal(yn, "yn", self.p, "p") * self.y_scale + self.y_mean

    @staticmethod
    def _signal(x, name: str, c: int, letter: str) -> np.ndarray:
        arr = as_float_array(x, name, ndim=(2, 3))
        if arr.shape[-1] != c:
            raise ValueError(f"{name}: expected shape (T, {c}) or (batch, T, {c}) ({letter}={c} channels), "
                             f"got {arr.shape}")
        return arr

    # ----------------------------------------------------------------- models
    def physical_weights(self, *, B2=None, D12=None, LD12=None, C2=None, D21=None, D22=None) -> dict:
        """The input/output weights of the model in physical units, from the normalised ones.

        ``B2 Su^-1``, ``D12 Su^-1``, ``LD12 Su^-1`` (``LD12 = Lambda D12``), ``Sy C2``,
        ``Sy D21``, ``Sy D22 Su^-1``. Multiplication by constant diagonal matrices, so the
        operands may be numpy arrays or cvxpy expressions (the result is then linear in them).

        Parameters
        ----------
        B2, D12, LD12, C2, D21, D22 : array_like or cvxpy.Expression, optional
            The weights to map; those not given (None) are left out of the result.

        Returns
        -------
        dict
            The mapped weights under the same names.
        """
        Su_inv, Sy = np.diag(1.0 / self.u_scale), np.diag(self.y_scale)
        maps = {"B2": lambda X: X @ Su_inv, "D12": lambda X: X @ Su_inv, "LD12": lambda X: X @ Su_inv,
                "C2": lambda X: Sy @ X, "D21": lambda X: Sy @ X, "D22": lambda X: Sy @ X @ Su_inv}
        given = {"B2": B2, "D12": D12, "LD12": LD12, "C2": C2, "D21": D21, "D22": D22}
        return {k: maps[k](X) for k, X in given.items() if X is not None}

    def to_physical(self, model_n: ImplicitRNN) -> ImplicitRNN:
        """The model from physical inputs ``u`` to physical outputs ``y``.

        Parameters
        ----------
        model_n : ImplicitRNN
            A model from normalised inputs ``u_n`` to normalised outputs ``y_n``.

        Returns
        -------
        ImplicitRNN
            B2 -> B2 Su^-1, D12 -> D12 Su^-1, C2 -> Sy C2, D21 -> Sy D21,
            D22 -> Sy D22 Su^-1, bx -> bx - B2 Su^-1 mu_u, bv -> bv - D12 Su^-1 mu_u,
            by -> Sy (by - D22 Su^-1 mu_u) + mu_y; E, F, B1, C1 and the activation unchanged.
            Simulated from the same initial state on ``u`` it gives ``y_scale * y_n + y_mean``
            where ``y_n`` is ``model_n``'s output on ``normalize_inputs(u)``.

        Raises
        ------
        TypeError
            ``model_n`` is not an ImplicitRNN.
        ValueError
            The model's m or p differ from the scaling's.
        """
        model_n = self._check_model(model_n, "model_n")
        w = self.physical_weights(B2=model_n.B2, D12=model_n.D12, C2=model_n.C2, D21=model_n.D21,
                                  D22=model_n.D22)
        shift = self.u_mean / self.u_scale  # Su^-1 mu_u
        return replace(model_n, **w,
                       bx=model_n.bx - model_n.B2 @ shift,
                       bv=model_n.bv - model_n.D12 @ shift,
                       by=self.y_scale * (model_n.by - model_n.D22 @ shift) + self.y_mean)

    def to_normalized(self, model_p: ImplicitRNN) -> ImplicitRNN:
        """Inverse of :meth:`to_physical`: the model from ``u_n`` to ``y_n``.

        Parameters
        ----------
        model_p : ImplicitRNN
            A model in physical units (``u`` to ``y``).

        Returns
        -------
        ImplicitRNN
            The model with ``to_physical(result) == model_p`` up to rounding; E, F, B1, C1 and
            the state unchanged.

        Raises
        ------
        TypeError, ValueError
            As :meth:`to_physical` (not an ImplicitRNN; m or p differ from the scaling's).
        """
        model_p = self._check_model(model_p, "model_p")
        return self._inverse().to_physical(model_p)

    def _inverse(self) -> "ChannelScaling":
        """The scaling whose :meth:`to_physical` is this one's :meth:`to_normalized`.

        Going back, the normalised signals play the physical role and vice versa. In this
        class's convention ``u = (u_n - mu') / s'`` with ``s' = 1 / u_scale`` and
        ``mu' = -u_mean / u_scale`` (since ``u = u_scale u_n + u_mean``), and
        ``y_n = s'' y + mu''`` with ``s'' = 1 / y_scale``, ``mu'' = -y_mean / y_scale``.
        """
        return ChannelScaling(-self.u_mean / self.u_scale, 1.0 / self.u_scale,
                              -self.y_mean / self.y_scale, 1.0 / self.y_scale)

    def _check_model(self, model, name: str) -> ImplicitRNN:
        if not isinstance(model, ImplicitRNN):
            raise TypeError(f"{name}: expected an ImplicitRNN, got {type(model).__name__}")
        self.check_dims(model.m, model.p, name)
        return model

    def check_dims(self, m: int, p: int, name: str = "model") -> None:
        """Check that a model's input and output counts are this scaling's.

        Parameters
        ----------
        m, p : int
            The model's numbers of inputs and outputs.
        name : str
            The name used in the error message.

        Raises
        ------
        ValueError
            ``(m, p)`` differ from the scaling's (naming ``name`` and both).
        """
        if (m, p) != (self.m, self.p):
            raise ValueError(f"{name}: has m={m} inputs and p={p} outputs, but the scaling has "
                             f"m={self.m}, p={self.p}")

    # ----------------------------------------------------------------- values and files
    def to_dict(self) -> dict:
        """The four fields as JSON-safe lists of floats.

        Returns
        -------
        dict
            ``u_mean``, ``u_scale``, ``y_mean``, ``y_scale`` -> list of float.
        """
        return {k: getattr(self, k).tolist() for k in _FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> "ChannelScaling":
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        d : dict
            The four fields.

        Returns
        -------
        ChannelScaling

        Raises
        ------
        ValueError
            ``d`` is not a dict, lacks a field or has unknown keys; or a field is invalid (as in
            the constructor).
        """
        if not isinstance(d, dict):
            raise ValueError(f"d: expected a dict with keys {list(_FIELDS)}, got {type(d).__name__}")
        missing = [k for k in _FIELDS if k not in d]
        unknown = sorted(set(d) - set(_FIELDS))
        if missing or unknown:
            raise ValueError(f"d: expected keys {list(_FIELDS)}; missing {missing}, unknown {unknown}")
        return cls(**{k: d[k] for k in _FIELDS})

    def __eq__(self, other):
        if not isinstance(other, ChannelScaling):
            return NotImplemented
        return all(np.array_equal(getattr(self, k), getattr(other, k)) for k in _FIELDS)


def _mean_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel means and population stds of (batch, T, c) data; constant channels get scale 1."""
    flat = X.reshape(-1, X.shape[-1])
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    constant = std <= CONSTANT_CHANNEL_RTOL * np.abs(flat).max(axis=0)
    return mean, np.where(constant, 1.0, std)


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    return int(value)
