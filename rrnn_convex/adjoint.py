"""The adjoint (back-propagation through time) of :meth:`~rrnn_convex.ImplicitRNN.simulate`.

Exact vector-Jacobian products of the model's simulation, written out in numpy; finite
differences are never used. :func:`implicit_rnn_vjp` gives ``J' g`` with respect to the input
sequence and :func:`rnn_input_vjp` the same from already simulated states (used by the Lipschitz
lower-bound search, :mod:`rrnn_convex.analysis`);
:func:`rnn_adjoint` gives the adjoint states from which input and weight gradients are
contractions (used by the barrier baseline, :mod:`rrnn_convex.baselines.barrier`).

This module depends only on the model layer (:mod:`rrnn_convex.model`, its activations) and
input checking.
"""
from __future__ import annotations

import numpy as np

from ._validation import as_float_array
from .model import ImplicitRNN

__all__ = ["implicit_rnn_vjp", "rnn_adjoint", "rnn_input_vjp"]


def implicit_rnn_vjp(model: ImplicitRNN, u, cotangent, x0=None):
    """Simulate and back-propagate: returns ``(y, J' g)`` with J = dy/du and g = ``cotangent``.

    ``u`` and ``cotangent`` shaped (T, m)/(T, p) or (batch, T, m)/(batch, T, p). Adjoint of the
    explicit recursion (A = E^-1 F, B1h = E^-1 B1, B2h = E^-1 B2)::

        lam_T = 0
        gw_t  = D21' g_t + B1h' lam_{t+1},    gv_t = sigma'(v_t) * gw_t
        gu_t  = D22' g_t + B2h' lam_{t+1} + D12' gv_t
        lam_t = C2' g_t + A' lam_{t+1} + C1' gv_t

    with v_t = C1 x_t + D12 u_t + bv. At the kinks of relu the right derivative is used (a
    valid element of the Clarke subdifferential; the set of inputs hitting a kink has measure zero).
    With an equilibrium weight D11 (``v_t = C1 x_t + D11 w_t + D12 u_t + bv``) the neurons' gain
    ``diag(sigma'(v_t))`` becomes ``K_t = (I - diag(sigma'(v_t)) D11)^-1 diag(sigma'(v_t))``
    and ``gv_t = K_t' gw_t`` (see :func:`rnn_adjoint`).

    Parameters
    ----------
    model : ImplicitRNN
        The model to simulate.
    u : array_like
        Inputs, (T, m) or (batch, T, m).
    cotangent : array_like
        The output cotangent g, shaped like the outputs: (T, p) or (batch, T, p).
    x0 : array_like, optional
        Initial state(s), as for :meth:`~rrnn_convex.ImplicitRNN.simulate` (zeros by default).

    Returns
    -------
    y : numpy.ndarray
        The simulated outputs, shaped like ``cotangent``.
    gu : numpy.ndarray
        ``J' g``, shaped like ``u``.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`~rrnn_convex.ImplicitRNN`.
    ValueError
        If ``cotangent`` is not shaped like the outputs (the message gives both shapes), or
        ``u`` / ``x0`` are invalid for the model.
    """
    if not isinstance(model, ImplicitRNN):
        raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
    ub, batched = model.check_input(u)
    g = as_float_array(cotangent, "cotangent", ndim=(2, 3))
    g = g if g.ndim == 3 else g[None]
    if g.shape != ub.shape[:2] + (model.p,):
        want = ub.shape[:2] + (model.p,) if batched else (ub.shape[1], model.p)
        raise ValueError(f"cotangent: expected shape {want} (like y), got {np.shape(cotangent)}")
    y, xs = model.simulate(ub, x0, return_states=True)
    gu = rnn_input_vjp(model, ub, xs, g)
    if not batched:
        return y[0], gu[0]
    return y, gu


def rnn_adjoint(model: ImplicitRNN, ub, xs, g):
    """The adjoint recursion of :func:`implicit_rnn_vjp` for an output cotangent, given the states.

    Input and weight gradients are contractions of what it returns (:func:`implicit_rnn_vjp`,
    :func:`rrnn_convex.baselines.barrier.simulation_gradient`). The arguments are not checked:
    they come from :meth:`~rrnn_convex.ImplicitRNN.simulate` with ``return_states=True``.

    With a nonzero D11 the neurons are re-evaluated by the model's own equilibrium
    (:meth:`~rrnn_convex.ImplicitRNN.neurons`), and ``gv_t`` is the cotangent of the neurons'
    direct input ``v0_t = C1 x_t + D12 u_t + bv``: a change ``dv0`` moves them by
    ``dw = K dv0`` with ``K = (I - diag(d) D11)^-1 diag(d)``, ``d = sigma'(v_t)``, so
    ``gv_t = K' gw_t = diag(d) (I - D11' diag(d))^-1 gw_t`` (one solve of size q per sequence
    and step). The gradient with respect to ``D11`` itself would be ``sum_t gv_t w_t'``.

    Parameters
    ----------
    model : ImplicitRNN
        The simulated model.
    ub : numpy.ndarray
        Inputs, (batch, T, m).
    xs : numpy.ndarray
        Simulated states, (batch, T + 1, n) (the first T are used).
    g : numpy.ndarray
        Output cotangent, (batch, T, p).

    Returns
    -------
    LN : numpy.ndarray
        ``LN[:, t] = lam_{t+1}``, (batch, T, n).
    GV : numpy.ndarray
        ``GV[:, t] = gv_t``, (batch, T, q).
    lam_0 : numpy.ndarray
        dL/dx_0, (batch, n).
    """
    A, B1h, _, _ = model._explicit_matrices()
    B, T = ub.shape[:2]
    v = xs[:, :T] @ model.C1.T + ub @ model.D12.T + model.bv
    plain = model.d11_kind == "zero"
    if not plain:  # the equilibrium w of every step at once, and v with its D11 w term
        v = v + (model.neurons(v.reshape(B * T, model.q)) @ model.D11.T).reshape(B, T, model.q)
    dsig = model.activation.derivative(v)
    gw_y = g @ model.D21  # D21' g_t
    lam_y = g @ model.C2  # C2' g_t
    lam = np.zeros((B, model.n))
    LN = np.empty((B, T, model.n))
    GV = np.empty((B, T, model.q))
    C1 = model.C1
    for t in range(T - 1, -1, -1):
        LN[:, t] = lam
        gw = gw_y[:, t] + lam @ B1h  # row form: (B1h' lam)'
        gv = dsig[:, t] * (gw if plain else _equilibrium_cotangent(gw, dsig[:, t], model.D11))
        GV[:, t] = gv
        lam = lam_y[:, t] + lam @ A + gv @ C1
    return LN, GV, lam


def rnn_input_vjp(model: ImplicitRNN, ub, xs, g):
    """``J' g`` of :func:`implicit_rnn_vjp` given the simulated states (no simulation, no checks).

    Parameters
    ----------
    model, ub, xs, g
        As for :func:`rnn_adjoint`: the model, its inputs (batch, T, m), the states simulated
        from them (batch, T + 1, n) and the output cotangent (batch, T, p).

    Returns
    -------
    numpy.ndarray
        ``J' g`` with respect to the inputs, (batch, T, m).
    """
    LN, GV, _ = rnn_adjoint(model, ub, xs, g)
    _, _, B2h, _ = model._explicit_matrices()
    return g @ model.D22 + LN @ B2h + GV @ model.D12


def _equilibrium_cotangent(gw: np.ndarray, d: np.ndarray, D11: np.ndarray) -> np.ndarray:
    """``(I - D11' diag(d))^-1 gw`` row by row: gw (B, q), d (B, q) the slopes (see :func:`rnn_adjoint`)."""
    q = D11.shape[0]
    M = np.eye(q)[None] - D11.T[None] * d[:, None, :]  # I - D11' diag(d), per sequence
    return np.linalg.solve(M, gw[:, :, None])[:, :, 0]
