"""The block matrices of docs/design.md section 3, built in one place (section 3.6).

Every function here takes its operands as numpy arrays, cvxpy expressions or
:class:`~rrnn_convex.rigorous.Bounded` arrays (the rigorous check) and returns the matrix in the
same kind, so the model sets, certification, projection, training and verification all use the
same code.

Notation (symmetric blocks, in the order dx, dw, du, then the Schur blocks):
``a = alpha``, ``b = beta`` (activation slope bounds), ``Lam`` = diag(lambda) >= 0 the
multiplier of the incremental quadratic constraint ``(dw - a dv)' Lam (b dv - dw) >= 0``.

Two equivalent forms of the dissipation inequality
``V(dx) - V(dx+) + g |du|^2 - |dy|^2 / g >= 0`` are provided:

* :func:`lifted_lmi` — the matrix of docs/design.md section 3.3, with ``V = dx' E' P^-1 E dx`` bounded
  below by ``dx'(E + E' - P) dx``; linear in (E, F, B1, B2, C2, D21, D22, P, Lam, g) for fixed
  C1, D12. With E -> Q, F -> Q A, B1 -> Q E^-1 B1, B2 -> Q E^-1 B2, P -> Q it is the exact
  condition for fixed weights with metric Q (then ``E + E' - P = Q``).
* :func:`dissipation_lmi` — the same inequality with the P block eliminated (Schur complement
  at P = Q^-1 for the metric ``V = (E dx)' Q (E dx)``): dense ``E'QE`` and ``G'QG`` blocks,
  ``G = [F B1 B2]``. This is exact for fixed weights without inverting E, so it is the form the
  rigorous check evaluates; as a solver formulation it is the "naive" dense baseline
  (docs/design.md section 3.5).

Sign convention: every matrix built here must be positive definite; solvers impose
``M - margin I >= 0`` with a small positive margin (docs/design.md section 3.7).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .rigorous import Bounded, power_of_two_exponent, scaled_by_power_of_two

try:  # cvxpy is a core dependency; keep the numpy path importable without it for tooling
    import cvxpy as cp
except ImportError:  # pragma: no cover
    cp = None


def _is_cvx(x) -> bool:
    return cp is not None and isinstance(x, cp.Expression)


def _kind(*ops) -> str:
    if any(_is_cvx(o) for o in ops):
        return "cvxpy"
    if any(isinstance(o, Bounded) for o in ops):
        return "bounded"
    return "numpy"


def _shape(x) -> tuple[int, int]:
    s = x.shape
    return (int(s[0]), int(s[1]))


def _sizes(F, B1, B2, C2, gain: bool) -> tuple[int, int, int, int]:
    """(n, q, m, p) of the operands; m = p = 0 without the gain blocks."""
    n, q = _shape(F)[0], _shape(B1)[1]
    return n, q, (_shape(B2)[1] if gain else 0), (_shape(C2)[0] if gain else 0)


def _assemble(blocks: dict, sizes: list[int], kind: str):
    """Symmetric block matrix from its upper-triangular blocks ``blocks[(i, j)]`` (i <= j).

    Missing blocks are zero; lower blocks are the transposes of the upper ones; rows and
    columns of size zero are dropped.
    """
    keep = [i for i, s in enumerate(sizes) if s > 0]
    rows = []
    for i in keep:
        row = []
        for j in keep:
            if i <= j:
                blk = blocks.get((i, j))
                row.append(np.zeros((sizes[i], sizes[j])) if blk is None else blk)
            else:
                blk = blocks.get((j, i))
                row.append(np.zeros((sizes[i], sizes[j])) if blk is None else blk.T)
        rows.append(row)
    if kind == "cvxpy":
        return cp.bmat(rows)
    if kind == "bounded":
        return Bounded.block(rows)
    return np.block(rows)


def _scalar(x, kind):
    return Bounded(np.float64(x)) if kind == "bounded" and not isinstance(x, Bounded) else x


def _eye(g, k: int, kind: str):
    """``g * I_k`` for a float, cvxpy scalar or Bounded scalar ``g``."""
    if kind == "bounded":
        return Bounded.wrap(g) * np.eye(k)
    return g * np.eye(k)


def _add(blocks: dict, key, value):
    blocks[key] = value if blocks.get(key) is None else blocks[key] + value


def sector_blocks(Lam, LC1, LD12, C1, D12, alpha: float, beta: float, kind: str,
                  with_input: bool = True, *, LD11=None, D11=None) -> dict:
    """The S-procedure term of the slope restriction, as blocks over (dx, dw, du).

    ``-2 (dw - a dv)' Lam (b dv - dw)`` with ``dv = C1 dx + D12 du`` contributes
    ``[[2ab C1'Lam C1, -(a+b) C1'Lam, 2ab C1'Lam D12], [., 2 Lam, -(a+b) Lam D12],
    [., ., 2ab D12'Lam D12]]`` (docs/design.md section 3.1). ``LC1 = Lam C1`` and
    ``LD12 = Lam D12`` are passed separately so that the change of variables ``Ct = Lam C1``
    (alpha = 0) keeps the matrix linear; the ``2ab`` terms need C1 and D12 themselves and are
    omitted when ``ab == 0``.

    **With an equilibrium term** ``v = C1 x + D11 w + D12 u + bv`` (``LD11 = Lam D11`` given),
    the neurons' input difference is ``dv = C1 dx + D11 dw + D12 du``. Multiplying out::

        -2 (dw - a dv)' Lam (b dv - dw) = 2 dw'Lam dw - 2(a+b) dw'Lam dv + 2ab dv'Lam dv

    and sorting the terms by the pair of blocks they couple (a term ``2 x' S y`` between two
    different blocks is the off-diagonal block S; ``x' S x`` within a block is its symmetric
    part):

    * ``2 dw'Lam dw`` is the old ``2 Lam``;
    * ``-2(a+b) dw'Lam dv`` gives the old ``-(a+b) Lam C1`` and ``-(a+b) Lam D12`` couplings,
      and, from its ``dw'Lam D11 dw`` part, ``-(a+b) (Lam D11 + D11'Lam)`` in the dw block;
    * ``2ab dv'Lam dv`` gives the old dx-dx, dx-du and du-du terms, and, wherever one of the
      two factors is ``D11 dw``: ``2ab C1'Lam D11`` in dx-dw, ``2ab D11'Lam D12`` in dw-du and
      ``2ab D11'Lam D11`` in dw-dw.

    So the dw block becomes ``2 Lam - (a+b)(Lam D11 + D11'Lam) + 2ab D11'Lam D11`` (for
    a = 0, b = 1 the only change: ``2 Lam - Lam D11 - D11'Lam``), with ``Lam D11`` entering
    linearly through ``LD11`` (the REN's ``Dt11``); the ``2ab`` terms need D11 itself.
    ``LD11=None`` (no equilibrium term) builds exactly the matrix without these terms.

    Parameters
    ----------
    Lam : array_like, cvxpy expression or Bounded, shape (q, q)
        The diagonal multiplier Lambda >= 0.
    LC1 : same kind, shape (q, n)
        ``Lam C1`` (or the variable ``Ct`` of the free-C1 parametrisation).
    LD12 : same kind, shape (q, m), or None
        ``Lam D12`` (or ``Dt``); only used when ``with_input``.
    C1, D12 : same kind, or None
        The weights themselves; needed only when ``alpha * beta != 0``.
    alpha, beta : float
        The activation's slope bounds.
    kind : {"numpy", "cvxpy", "bounded"}
        The kind of the operands (and of the result).
    with_input : bool
        Include the du blocks (the gain LMI); False for the contraction LMI.
    LD11 : same kind, shape (q, q), optional
        ``Lam D11`` (or the variable ``Dt11``); None for a model without the equilibrium term.
    D11 : same kind, shape (q, q), optional
        D11 itself; needed only with ``LD11`` when ``alpha * beta != 0``.

    Returns
    -------
    dict
        Upper-triangular blocks keyed by (row, column) block index, 0 = dx, 1 = dw, 2 = du.

    Raises
    ------
    ValueError
        ``alpha * beta != 0`` and C1 (or, with the du blocks, D12; or, with ``LD11``, D11) is
        None.
    """
    a, b = _scalar(alpha, kind), _scalar(beta, kind)
    apb = -(a + b)
    blocks = {(0, 1): apb * LC1.T, (1, 1): _scalar(2.0, kind) * Lam}
    if with_input:
        blocks[(1, 2)] = apb * LD12
    if alpha * beta != 0.0:
        if C1 is None or (with_input and D12 is None):
            raise ValueError("sector_blocks: alpha * beta != 0 needs C1 and D12 themselves "
                             "(fix them, or drop the 2ab terms conservatively)")
        ab2 = _scalar(2.0, kind) * a * b
        blocks[(0, 0)] = ab2 * (C1.T @ LC1)
        if with_input:
            blocks[(0, 2)] = ab2 * (C1.T @ LD12)
            blocks[(2, 2)] = ab2 * (D12.T @ LD12)
    if LD11 is not None:
        # the equilibrium term's blocks, derived in the docstring
        _add(blocks, (1, 1), apb * (LD11 + LD11.T))
        if alpha * beta != 0.0:
            if D11 is None:
                raise ValueError("sector_blocks: alpha * beta != 0 needs D11 itself with LD11")
            _add(blocks, (0, 1), ab2 * (C1.T @ LD11))
            _add(blocks, (1, 1), ab2 * (D11.T @ LD11))
            if with_input:
                _add(blocks, (1, 2), ab2 * (D11.T @ LD12))
    return blocks


def lifted_lmi(*, E, F, B1, P, Lam, LC1, C1=None, alpha: float, beta: float,
               B2=None, LD12=None, D12=None, C2=None, D21=None, D22=None, gamma=None,
               LD11=None, D11=None):
    """The Theta (``gamma=None``) or Theta_gamma block matrix, which must be > 0.

    docs/design.md section 3.3. Theta_gamma, order (dx, dw, du, P-block, y-block)::

        [ E+E'-P + 2ab C1'L C1   -(a+b) C1'L    2ab C1'L D12          F'    C2'  ]
        [ -(a+b) L C1            2L             -(a+b) L D12          B1'   D21' ]
        [ 2ab D12'L C1           -(a+b) D12'L   gI + 2ab D12'L D12    B2'   D22' ]
        [ F                      B1             B2                    P     0    ]
        [ C2                     D21            D22                   0     gI   ]

    Theta keeps the dx, dw rows and the P block.

    Parameters
    ----------
    E, F : array_like, cvxpy expression or Bounded, shape (n, n)
        The state-equation weights (for fixed weights certified with metric Qx: ``Qx`` and
        ``Qx A``, docs/design.md section 3.5).
    B1 : same kind, shape (n, q)
    P : same kind, shape (n, n)
        The inverse of the metric on ``E dx`` (symmetric).
    Lam : same kind, shape (q, q)
        The diagonal multiplier Lambda >= 0.
    LC1 : same kind, shape (q, n)
        ``Lam C1``, or the free variable ``Ct`` (docs/design.md section 3.4).
    C1 : same kind or None
        Needed only when ``alpha * beta != 0``.
    alpha, beta : float
        The activation's slope bounds.
    B2, LD12, D12, C2, D21, D22 : same kind, optional
        The input and output weights (``LD12 = Lam D12`` or ``Dt``); needed with ``gamma``.
    gamma : float, cvxpy expression or Bounded, optional
        The gain bound; None builds the contraction (Theta) matrix.
    LD11, D11 : same kind, shape (q, q), optional
        The equilibrium term ``Lam D11`` (or ``Dt11``) and, when ``alpha * beta != 0``, D11
        itself: they change only the S-procedure blocks (:func:`sector_blocks`), the dw block
        above becoming ``2L - (a+b)(L D11 + D11'L) + 2ab D11'L D11``. None: no equilibrium term.

    Returns
    -------
    numpy.ndarray, cvxpy expression or Bounded
        The symmetric block matrix, of size ``2n + q`` (Theta) or ``2n + q + m + p``
        (Theta_gamma), in the operands' kind. Blocks of size zero are dropped.

    Raises
    ------
    ValueError
        From :func:`sector_blocks`: ``alpha * beta != 0`` without C1 (and D12).
    """
    kind = _kind(E, F, B1, P, Lam, LC1, B2, LD12, C2, D21, D22, gamma, LD11)
    gain = gamma is not None
    n, q, m, p = _sizes(F, B1, B2, C2, gain)
    blocks = sector_blocks(Lam, LC1, LD12, C1, D12, alpha, beta, kind, with_input=gain, LD11=LD11, D11=D11)
    _add(blocks, (0, 0), E + E.T - P)
    blocks[(0, 3)] = F.T
    blocks[(1, 3)] = B1.T
    blocks[(3, 3)] = P
    if gain:
        _add(blocks, (2, 2), _eye(gamma, m, kind))
        blocks[(2, 3)] = B2.T
        blocks[(0, 4)] = C2.T
        blocks[(1, 4)] = D21.T
        blocks[(2, 4)] = D22.T
        blocks[(4, 4)] = _eye(gamma, p, kind)
    return _assemble(blocks, [n, q, m, n, p], kind)


def dissipation_lmi(*, E, F, B1, Q, Lam, LC1, C1=None, alpha: float, beta: float,
                    B2=None, LD12=None, D12=None, C2=None, D21=None, D22=None, gamma=None,
                    LD11=None, D11=None):
    """The same inequality with the P block eliminated: exact for fixed weights and metric Q.

    With ``V(dx) = (E dx)' Q (E dx)`` and ``G = [F B1 B2]`` (``[F B1]`` for Theta), order
    (dx, dw, du, y-block)::

        [ diag(E'QE, 0, gI) + S - G'QG    H' ]
        [ H                               gI ]     > 0,    H = [C2 D21 D22],

    where S are the :func:`sector_blocks`. Theta keeps the dx, dw rows and no H. Together with
    Q > 0 this proves contraction (and incremental l2 gain <= gamma) of the model
    (docs/design.md section 3.5).

    Parameters
    ----------
    E, F : array_like, cvxpy expression or Bounded, shape (n, n)
        The state-equation weights (``E = I``, ``F = A`` for the explicit form).
    B1 : same kind, shape (n, q)
    Q : same kind, shape (n, n)
        The metric on ``E dx`` (symmetric; Q > 0 is a separate condition).
    Lam, LC1, C1, alpha, beta, B2, LD12, D12, C2, D21, D22, gamma, LD11, D11
        As in :func:`lifted_lmi`.

    Returns
    -------
    numpy.ndarray, cvxpy expression or Bounded
        The symmetric block matrix of size ``n + q`` (contraction) or ``n + q + m + p`` (gain),
        in the operands' kind.

    Raises
    ------
    ValueError
        From :func:`sector_blocks`: ``alpha * beta != 0`` without C1 (and D12).
    """
    kind = _kind(E, F, B1, Q, Lam, LC1, B2, LD12, C2, D21, D22, gamma, LD11)
    gain = gamma is not None
    n, q, m, p = _sizes(F, B1, B2, C2, gain)
    blocks = sector_blocks(Lam, LC1, LD12, C1, D12, alpha, beta, kind, with_input=gain, LD11=LD11, D11=D11)
    _add(blocks, (0, 0), E.T @ (Q @ E))
    G = [F, B1, B2] if gain else [F, B1]
    QG = [Q @ g for g in G]
    for i in range(len(G)):
        for j in range(i, len(G)):
            _add(blocks, (i, j), -(G[i].T @ QG[j]))
    if gain:
        _add(blocks, (2, 2), _eye(gamma, m, kind))
        blocks[(0, 3)] = C2.T
        blocks[(1, 3)] = D21.T
        blocks[(2, 3)] = D22.T
        blocks[(3, 3)] = _eye(gamma, p, kind)
    return _assemble(blocks, [n, q, m, p], kind)


def model_operands(model, Q, lam, *, bounded: bool = False, equation_exponent: int = 0) -> dict[str, Any]:
    """Operands of :func:`dissipation_lmi` for a fixed model, metric Q and multipliers lam.

    With ``bounded=True`` the weights are wrapped as exact :class:`Bounded` arrays so the
    products carry rounding bounds (used by the rigorous check).

    ``equation_exponent=k`` evaluates the same matrix in the representation ``2^k (E, F, B1, B2)``
    with metric ``2^-2k Q`` (:meth:`ImplicitRNN.transform` by ``2^k I``; ``V = (E dx)' Q (E dx)``
    and every block of the LMI are unchanged): choosing k so that E has unit scale keeps the
    products away from overflow and underflow whatever the units of the state equations. The
    power-of-two scaling is exact except below the normal range, where the Bounded operands carry
    the rounding (:func:`~rrnn_convex.rigorous.scaled_by_power_of_two`).

    Parameters
    ----------
    model : ImplicitRNN
        The model whose weights are the operands.
    Q : array_like, shape (n, n)
        The metric on ``E dx``.
    lam : array_like, shape (q,)
        The diagonal of Lambda.
    bounded : bool
        Wrap the operands as :class:`~rrnn_convex.rigorous.Bounded` arrays.
    equation_exponent : int
        The power of two k described above (0: the model as given).

    Returns
    -------
    dict
        Keyword arguments of :func:`dissipation_lmi` except ``gamma``: E, F, B1, B2, C1, D12,
        C2, D21, D22, Q, Lam, LC1, LD12, alpha, beta, and D11, LD11 when the model's D11 is
        nonzero (:func:`model_D11`).
    """
    k = int(equation_exponent)
    if bounded:
        wrap = Bounded
        scale = lambda x, e: scaled_by_power_of_two(x, e) if e else Bounded(x)  # noqa: E731
    else:
        wrap = lambda x: x  # noqa: E731
        scale = lambda x, e: np.ldexp(np.asarray(x, dtype=np.float64), e) if e else x  # noqa: E731
    Lam = np.diag(np.asarray(lam, dtype=np.float64))
    ops = {k_: wrap(getattr(model, k_)) for k_ in ("C1", "D12", "C2", "D21", "D22")}
    ops.update({k_: scale(getattr(model, k_), k) for k_ in ("E", "F", "B1", "B2")})
    ops["Q"] = scale(Q, -2 * k)
    ops["Lam"] = wrap(Lam)
    ops["LC1"] = ops["Lam"] @ ops["C1"]
    ops["LD12"] = ops["Lam"] @ ops["D12"]
    D11 = model_D11(model)
    if D11 is not None:  # v depends on w: the S-procedure blocks of sector_blocks' docstring
        ops["D11"] = wrap(D11)
        ops["LD11"] = ops["Lam"] @ ops["D11"]
    ops["alpha"] = model.activation.alpha
    ops["beta"] = model.activation.beta
    return ops


def model_D11(model) -> np.ndarray | None:
    """The model's equilibrium weight D11 as float64, or None when it is all zero.

    A zero D11 is returned as None so that every builder makes exactly (bit for bit) the matrix
    of a model without the equilibrium term.

    Parameters
    ----------
    model : ImplicitRNN

    Returns
    -------
    numpy.ndarray or None
        D11, shape (q, q), when it has a nonzero entry; otherwise None.
    """
    D11 = np.asarray(model.D11, dtype=np.float64)
    return D11 if np.any(D11 != 0.0) else None


def equation_exponent(model) -> int:
    """The k of :func:`model_operands` that brings max|E| to [0.5, 1).

    With it the state equations are in units of their own scale, so that certification does not
    depend on them (docs/design.md section 3.6).

    Parameters
    ----------
    model : ImplicitRNN

    Returns
    -------
    int
        ``-e`` with ``max|E| = f 2^e``, ``f`` in [0.5, 1); 0 when E is zero.
    """
    return -power_of_two_exponent(np.max(np.abs(np.asarray(model.E, dtype=np.float64))))


def cirnn_lmi(*, E, F, P):
    """The contracting implicit RNN (ci-RNN) LMI of Revay & Manchester (2020), which must be > 0::

        [ E + E' - P   F' ]
        [ F            P  ]      P diagonal,

    for the model ``E x+ = sigma(F x + B u + b)`` with sigma slope-restricted in [-1, 1]: the
    metric ``E' P^-1 E`` is contracted because a diagonal P commutes with the activation
    (docs/design.md section 3.8).

    Parameters
    ----------
    E, F, P : array_like or cvxpy expression, shape (n, n)
        The ci-RNN's weights (F is its W) and the diagonal certificate P.

    Returns
    -------
    numpy.ndarray or cvxpy expression
        The symmetric 2n x 2n block matrix.
    """
    kind = _kind(E, F, P)
    n = _shape(F)[0]
    return _assemble({(0, 0): E + E.T - P, (0, 1): F.T, (1, 1): P}, [n, n], kind)


def srnn_lmi(*, W, eps: float):
    """The stable-RNN condition of Miller & Hardt, ``||W||_2 <= 1 - eps``, as an LMI >= 0::

        [ (1 - eps) I   W'          ]
        [ W             (1 - eps) I ]

    Parameters
    ----------
    W : array_like or cvxpy expression, shape (n, n)
        The recurrent weight.
    eps : float
        The margin below 1 of the spectral norm.

    Returns
    -------
    numpy.ndarray or cvxpy expression
        The symmetric 2n x 2n block matrix (positive semidefinite iff ``||W||_2 <= 1 - eps``).
    """
    kind = _kind(W)
    n = _shape(W)[0]
    c = 1.0 - eps
    return _assemble({(0, 0): c * np.eye(n), (0, 1): W.T, (1, 1): c * np.eye(n)}, [n, n], kind)
