"""The Levenberg-Marquardt loop shared by the SCP trainer and the LSTM baseline (docs/design.md
sections 4.2 and 4.4).

:class:`~rrnn_convex.fit.RobustRNNRegressor` (a convex step in a model set) and
:func:`~rrnn_convex.baselines.lm.train_lm` (the unconstrained damped Gauss-Newton step) differ
only in how a damped step is computed and checked. Everything around it lives here:

* :func:`minibatch`: the windows of one iteration (all, or a sorted random subset);
* :func:`reduced_system`, :func:`x0_step`, :func:`moved_x0`: the damped Gauss-Newton system
  with the initial states eliminated, and the initial-state part of a step;
* :func:`predicted_decrease`: the decrease ``||r||^2 - ||r + J d + J_x dx||^2`` of the
  Gauss-Newton model, from a :class:`~rrnn_convex.linearize.Linearization`;
* :func:`ratio_test`: the candidate's true decrease against the predicted one;
* :func:`next_mu`: the damping rule (``MU_AFTER_ACCEPT``, ``MU_AFTER_FAILURE``);
* :func:`iterate`: one iteration, trial steps with growing mu until one is accepted
  (at most ``MAX_TRIALS``); the step itself is passed in, a callable ``mu -> Trial``;
* :func:`track_best`: the best model by validation score and the patience count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .linearize import Linearization

#: trial steps per iteration before the iteration ends without an accepted step
MAX_TRIALS = 8
#: mu factor after an accepted step: (ratio above which it applies, factor), first match wins
MU_AFTER_ACCEPT = ((0.75, 1 / 3), (0.25, 1.0), (-np.inf, 2.0))
#: mu factor after a rejected step, by the kind of rejection ("solver": the step could not be
#: computed; "ratio": the loss did not drop enough; "certificate": the candidate left the set)
MU_AFTER_FAILURE = {"solver": 10.0, "ratio": 4.0, "certificate": 4.0}
#: a step is accepted when the true decrease is more than this fraction of the predicted one
MIN_RATIO = 1e-3
#: mu (relative to the damping scale) above which no step can change the model
MU_MAX = 1e12
#: the damping of the initial states when they are not learned (the step leaves them alone)
FROZEN_X0_DAMPING = 1e300
#: a validation score must improve by more than this to count as better
IMPROVEMENT = 1e-12


def minibatch(rng: np.random.Generator, count: int, batch_size: int | None) -> np.ndarray:
    """The indices of one iteration's windows.

    Parameters
    ----------
    rng : numpy.random.Generator
        Drawn from only when a subset is taken.
    count : int
        Number of training windows.
    batch_size : int or None
        Windows per iteration; None, 0 or at least ``count``: all of them.

    Returns
    -------
    numpy.ndarray
        ``arange(count)``, or ``batch_size`` distinct indices in increasing order.
    """
    if not batch_size or batch_size >= count:
        return np.arange(count)
    return np.sort(rng.choice(count, size=int(batch_size), replace=False))


def grown_batch(batch_size: int | None, count: int, factor: float) -> int | None:
    """The minibatch after a plateau: ``batch_size`` times ``factor``, rounded up.

    A minibatch step is a noisy step: the validation score stops improving once the noise of
    the minibatch's Gauss-Newton model dominates what a step gains. A larger minibatch lowers
    that noise (the dynamic sample size idea of Byrd, Chin, Nocedal and Wu, "Sample size
    selection in optimization methods for machine learning", Math. Program. 134, 2012).

    Parameters
    ----------
    batch_size : int or None
        Windows per iteration now (None: all of them).
    count : int
        Number of training windows.
    factor : float
        Growth factor, at least 1.

    Returns
    -------
    int or None
        The larger minibatch, None when it would hold every window, and ``batch_size`` itself
        when it cannot grow (already all windows, or ``factor`` 1).
    """
    if batch_size is None or factor <= 1:
        return batch_size
    grown = max(int(np.ceil(batch_size * factor)), batch_size + 1)
    return None if grown >= count else grown


def reduced_system(lin: Linearization, mu: float, learn_x0: bool, marquardt: bool):
    """The damped normal equations with the initial states eliminated (Schur complement).

    Parameters
    ----------
    lin : Linearization
        The Gauss-Newton blocks at the current point.
    mu : float
        The damping (of the weights, and of the initial states when they are learned).
    learn_x0 : bool
        False: the initial states get an infinite damping (``FROZEN_X0_DAMPING``): no step.
    marquardt : bool
        Damp by ``diag(J'J)`` instead of the identity.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(H_red, g_red)``: the damped step solves ``H_red d = -g_red``.
    """
    return lin.reduced(mu, mu if learn_x0 else FROZEN_X0_DAMPING, marquardt=marquardt)


def x0_step(lin: Linearization, d: np.ndarray, mu: float, learn_x0: bool, marquardt: bool) -> np.ndarray:
    """The initial-state step that goes with the weight step ``d``.

    Parameters
    ----------
    lin, mu, learn_x0, marquardt
        As in :func:`reduced_system`.
    d : numpy.ndarray
        The weight step (P,).

    Returns
    -------
    numpy.ndarray
        The optimal initial-state steps (windows, n) of the damped model for ``d``; zeros when
        the initial states are not learned.
    """
    if not learn_x0:
        return np.zeros(lin.gx.shape)
    return lin.x0_step(d, mu, mu, marquardt=marquardt)


def moved_x0(x0: np.ndarray, idx: np.ndarray, dx: np.ndarray, learn_x0: bool) -> np.ndarray:
    """The initial states after a step.

    Parameters
    ----------
    x0 : numpy.ndarray
        All windows' initial states (windows, n); not changed.
    idx : numpy.ndarray
        The minibatch (:func:`minibatch`).
    dx : numpy.ndarray
        Its initial-state step (len(idx), n).
    learn_x0 : bool
        False: the states stay.

    Returns
    -------
    numpy.ndarray
        A copy of ``x0`` with the rows ``idx`` moved by ``dx``.
    """
    out = x0.copy()
    if learn_x0:
        out[idx] = x0[idx] + dx
    return out


def predicted_decrease(lin: Linearization, d: np.ndarray, dx: np.ndarray) -> float:
    """The decrease of the Gauss-Newton model for the step (d, dx), without the damping terms.

    Parameters
    ----------
    lin : Linearization
        r, J'J, J'r and the initial-state blocks at the current point.
    d : numpy.ndarray
        The weight step (P,).
    dx : numpy.ndarray
        The initial-state step (windows, n).

    Returns
    -------
    float
        ``||r||^2 - ||r + J d + J_x dx||^2``
        ``= -(2 (g'd + gx.dx) + d'Hd + 2 dx'Hxt d + dx'Hx dx)``.
    """
    quad = d @ lin.H @ d + 2 * np.einsum("bn,bnp,p->", dx, lin.Hxt, d) + np.einsum("bn,bnm,bm->", dx, lin.Hx, dx)
    return -(2 * (lin.g @ d + np.sum(lin.gx * dx)) + quad)


@dataclass(frozen=True)
class Trial:
    """The outcome of one trial step.

    Parameters
    ----------
    kind : str
        "accepted" or the kind of rejection (a key of ``MU_AFTER_FAILURE``); anything else is
        a ValueError, as is an accepted trial whose ratio is nan.
    info : str
        Why it was rejected.
    ratio, loss : float
        The candidate's ratio and loss (nan when no candidate was computed).
    candidate : object
        Whatever the step hands back to its caller (the new model, ...).
    """

    kind: str
    info: str = ""
    ratio: float = float("nan")
    loss: float = float("nan")
    candidate: object = None

    def __post_init__(self):
        if self.kind != "accepted" and self.kind not in MU_AFTER_FAILURE:
            raise ValueError(f"Trial.kind: expected 'accepted' or one of {sorted(MU_AFTER_FAILURE)}, got {self.kind!r}")
        if self.kind == "accepted" and np.isnan(self.ratio):
            raise ValueError(f"Trial.ratio: an accepted trial needs a ratio (not nan), got {self.ratio!r}")

    @property
    def accepted(self) -> bool:
        """Whether the trial was accepted."""
        return self.kind == "accepted"


def ratio_test(L0: float, L1: float, pred: float, candidate=None) -> Trial:
    """Judge a candidate by its loss ``L1`` against the current loss ``L0`` and the predicted
    decrease ``pred``.

    Parameters
    ----------
    L0, L1 : float
        The loss at the current point and at the candidate (on the same minibatch).
    pred : float
        :func:`predicted_decrease` of the step.
    candidate : object
        Passed on in the returned :class:`Trial`.

    Returns
    -------
    Trial
        Accepted when the ratio ``(L0 - L1) / pred`` exceeds ``MIN_RATIO`` and ``L1 < L0``
        (a non-positive prediction gives ratio -inf), else a "ratio" rejection.
    """
    ratio = (L0 - L1) / pred if pred > 0 else -np.inf
    if ratio > MIN_RATIO and L1 < L0:
        return Trial("accepted", "", ratio, L1, candidate)
    return Trial("ratio", f"ratio {ratio:.3g}", ratio, L1, candidate)


def next_mu(mu: float, trial: Trial) -> float:
    """The damping after ``trial``.

    Parameters
    ----------
    mu : float
        The damping the trial used.
    trial : Trial
        Accepted: mu / 3 for a ratio above 0.75, mu above 0.25, 2 mu below
        (``MU_AFTER_ACCEPT``). Rejected: mu x10 after a solver failure, x4 otherwise
        (``MU_AFTER_FAILURE``).

    Returns
    -------
    float
        The damping for the next trial or iteration.
    """
    if trial.accepted:
        return mu * next(f for r, f in MU_AFTER_ACCEPT if trial.ratio > r)
    return mu * MU_AFTER_FAILURE[trial.kind]


@dataclass(frozen=True)
class Iteration:
    """What :func:`iterate` returns.

    Parameters
    ----------
    L0 : float
        The loss the iteration started from.
    mu : float
        The damping for the next iteration.
    trial : Trial or None
        The accepted trial, else None.
    failures : tuple of str
        The kinds of the rejected trials, in order.
    info : str
        Why the last rejected trial was rejected ("" when none was).
    out_of_time : bool
        The time ran out before a trial.
    """

    L0: float
    mu: float
    trial: Trial | None
    failures: tuple = ()
    info: str = ""
    out_of_time: bool = False

    @property
    def accepted(self) -> bool:
        """Whether a trial was accepted."""
        return self.trial is not None

    @property
    def batch_loss(self) -> float:
        """The minibatch loss after the iteration: the accepted candidate's, else ``L0``."""
        return self.trial.loss if self.trial is not None else self.L0


#: what ``after_failure`` returns to end the iteration without further trials
STOP = "stop"


def iterate(step: Callable[[float], Trial], mu: float, L0: float, *, time_left: Callable[[], bool] | None = None,
            after_failure: Callable[[list], object] | None = None, max_trials: int = MAX_TRIALS) -> Iteration:
    """One Levenberg-Marquardt iteration: trial steps with growing damping until one is accepted.

    Parameters
    ----------
    step : callable
        ``step(mu) -> Trial``: the damped step at ``mu`` (the convex step of the SCP trainer, the
        Gauss-Newton step of the LSTM baseline), computed and judged (:func:`ratio_test`).
    mu : float
        The damping of the first trial.
    L0 : float
        The loss at the current point (recorded in the result).
    time_left : callable, optional
        Checked before each trial; False ends the iteration (``out_of_time``).
    after_failure : callable, optional
        Called with the list of rejection kinds so far after each rejected trial (and after mu
        has grown); returning ``STOP`` ends the iteration.
    max_trials : int
        At most this many trials.

    Returns
    -------
    Iteration
        The accepted trial (if any), the damping for the next iteration (:func:`next_mu` of the
        last trial) and the rejections.
    """
    failures, info = [], ""
    for _ in range(max_trials):
        if time_left is not None and not time_left():
            return Iteration(L0, mu, None, tuple(failures), info, out_of_time=True)
        trial = step(mu)
        mu = next_mu(mu, trial)
        if trial.accepted:
            return Iteration(L0, mu, trial, tuple(failures), info)
        failures.append(trial.kind)
        info = trial.info
        if after_failure is not None and after_failure(failures) == STOP:
            break
    return Iteration(L0, mu, None, tuple(failures), info)


def track_best(best_score: float, stall: int, score: float, accepted: bool, scored: bool) -> tuple[bool, int]:
    """Early stopping: is the current model the best one so far, and the new stall count.

    Parameters
    ----------
    best_score : float
        The best validation score so far (lower is better).
    stall : int
        Accepted steps since the last improvement.
    score : float
        The current model's validation score.
    accepted : bool
        Whether this iteration accepted a step.
    scored : bool
        Whether there is validation data; without it the current model is always the best and
        the count stays at 0.

    Returns
    -------
    (bool, int)
        ``(best, stall)``: a score lower than ``best_score - IMPROVEMENT`` is the new best and
        resets the count; otherwise an accepted step adds one.
    """
    if not scored or score < best_score - IMPROVEMENT:
        return True, 0
    return False, stall + 1 if accepted else stall
