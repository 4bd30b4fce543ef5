"""The state of a fit and its checkpoint file.

:class:`FitState` is everything an iteration of :class:`~rrnn_convex.fit.RobustRNNRegressor`
changes, in normalised coordinates. It is frozen: an iteration makes a new state with
:func:`dataclasses.replace`, so the state an interrupted iteration started from is still at hand
for the checkpoint. Each field says how the checkpoint (``.npz``) stores it, in its metadata
(:func:`stored`); :meth:`FitState.save` and :meth:`FitState.load` are generated from the field
list, so adding a field is one line (and a load default, ``absent``, for checkpoints written
before the field existed).

The file: the weights of ``model`` as ``model_<name>`` and of ``best_model`` as
``best_<name>``, the arrays ``x0`` and ``best_x0``, the certificate points of both as
``point_<name>`` and ``bestpoint_<name>``,
and a JSON ``meta`` entry with the remaining fields, the model's activation, the format
``version``, the scaling, the windows' length and count.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .activations import get_activation
from .model import ImplicitRNN

CHECKPOINT_VERSION = 2
#: how a field is stored: the weights of a model under a key prefix, one array, a dict of arrays
#: under a key prefix, or a JSON value in ``meta``
KINDS = ("model", "array", "arrays", "json")
_REQUIRED = object()


def stored(kind: str, key: str, *, absent=_REQUIRED, **kw):
    """A :class:`FitState` field stored as ``kind`` under ``key``.

    Parameters
    ----------
    kind : {"model", "array", "arrays", "json"}
        How the checkpoint stores the field.
    key : str
        Its key (a key prefix for "model" and "arrays").
    absent : object, optional
        The value when a checkpoint lacks it (default: the checkpoint is incomplete).
    **kw
        Passed to :func:`dataclasses.field` (``default``, ``default_factory``).

    Returns
    -------
    dataclasses.Field

    Raises
    ------
    ValueError
        An unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    return field(metadata={"kind": kind, "key": key, "absent": absent}, **kw)


@dataclass(frozen=True, eq=False)
class FitState:
    """Everything an iteration changes, and what a checkpoint holds (normalised coordinates).

    Parameters
    ----------
    model : ImplicitRNN
        The current iterate.
    x0 : numpy.ndarray
        Its initial states, one per training window.
    point : dict
        The certificate variables of the step problem at the current iterate (name -> array;
        the multipliers ``lam`` among them).
    mu : float or None
        The Levenberg-Marquardt damping (None before the first iteration).
    history : list
        One dict per iteration (``RobustRNNRegressor.history_``).
    rng_state : dict or None
        The minibatch generator's state (``bit_generator.state``) when the state was saved.
    best_model, best_val, best_x0 : ImplicitRNN, float, numpy.ndarray
        The best iterate by validation NSE, its score and initial states.
    best_point : dict
        The certificate point of ``best_model`` (empty when unknown: the start, or a checkpoint
        written before the field existed).
    stall : int
        Accepted steps since the validation NSE last improved.
    settings : dict
        The fit's settings and data (:meth:`settings_of`), checked on resume.
    interior_pause : int
        Step attempts left that skip the interior check (``fit.INTERIOR_PAUSE``).
    batch_growths : int
        How often the minibatch has grown (``RobustRNNRegressor.batch_growth``).
    """

    model: ImplicitRNN = stored("model", "model_")
    x0: np.ndarray = stored("array", "x0")
    point: dict = stored("arrays", "point_")
    mu: float | None = stored("json", "mu", default=None)
    history: list = stored("json", "history", default_factory=list)
    rng_state: dict | None = stored("json", "rng", default=None)
    best_model: ImplicitRNN | None = stored("model", "best_", default=None)
    best_val: float = stored("json", "best_val", default=np.inf)
    best_x0: np.ndarray | None = stored("array", "best_x0", default=None)
    stall: int = stored("json", "stall", default=0)
    settings: dict = stored("json", "settings", absent={}, default_factory=dict)
    interior_pause: int = stored("json", "interior_pause", absent=0, default=0)
    # "bestpoint_", not "best_point_": keys under "best_" are best_model's weights
    best_point: dict = stored("arrays", "bestpoint_", default_factory=dict)
    batch_growths: int = stored("json", "batch_growths", absent=0, default=0)

    # -------------------------------------------------------------- the fit's identity
    @staticmethod
    def settings_of(run) -> dict:
        """What a checkpoint must share with the fit that resumes it: sizes, set, activation,
        parametrisation, normalisation, windows and the data (shape and a SHA-256 of the values),
        and ``equilibrium`` (a trained D11; recorded only when True, so that the settings of a fit
        without D11 are those it always had). Budgets, iteration caps and the seed may change
        between runs.

        Parameters
        ----------
        run : rrnn_convex.fit._Run
            The fit (its estimator, model set, windows and data).

        Returns
        -------
        dict
            JSON-serialisable settings.
        """
        est = run.est

        def digest(*arrays):
            return hashlib.sha256(b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in arrays)).hexdigest()

        settings = {"n_states": int(est.n_states), "n_neurons": int(est.n_neurons),
                    "model_set": run.model_set.key,
                    "gamma": None if est.gamma is None else float(est.gamma),
                    "activation": get_activation(est.activation).to_dict(),
                    "parametrization": est.parametrization,
                    "normalize": bool(est.normalize), "window": int(run.windows.length),
                    "window_starts": run.windows.starts.tolist(), "data_shape": [*run.U.shape, run.Y.shape[2]],
                    "data": digest(run.U, run.Y), "validation": None if run.val is None else digest(*run.val)}
        if getattr(est, "equilibrium", False):  # only then: the settings of a fit without D11 are unchanged
            settings["equilibrium"] = True
        return settings

    def check_resume(self, path, settings: dict) -> None:
        """Check that this (loaded) state was written by a fit with these settings.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint, for the error message.
        settings : dict
            :meth:`settings_of` of the fit that resumes.

        Returns
        -------
        None

        Raises
        ------
        ValueError
            The checkpoint records no settings, or differs in some (every differing field is
            named).
        """
        if not self.settings:
            raise ValueError(f"resume: {str(path)!r} records no fit settings (written by an older version of "
                             f"rrnn_convex), so it cannot be checked against this fit; start a new fit")

        def show(v):
            if isinstance(v, dict) and "name" in v:
                return f"{v['name']} [{v.get('alpha')}, {v.get('beta')}]"
            return repr(v)

        diffs = []
        # every key of either side: a setting recorded only by one (equilibrium) differs too
        for k in [*settings, *(k for k in self.settings if k not in settings)]:
            v, old = settings.get(k), self.settings.get(k)
            if old == v:
                continue
            if k in ("data", "validation") and old is not None and v is not None:
                diffs.append(f"{k} (same shape, other values)")
            elif k == "window_starts":
                diffs.append(f"{k} (other window starts: another --window-stride)")
            else:
                diffs.append(f"{k} (checkpoint {show(old)}, this fit {show(v)})")
        if diffs:
            raise ValueError(f"resume: the checkpoint {str(path)!r} was written by a fit with other settings or "
                             f"data: {'; '.join(diffs)}; start a new fit, or resume with the checkpoint's "
                             f"settings and data")

    # -------------------------------------------------------------- the file
    def save(self, path, scaling, windows) -> None:
        """Write the state to ``path`` (``.npz``) atomically.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file (replaced atomically, :func:`~rrnn_convex._io.atomic_path`).
        scaling : rrnn_convex.scaling.ChannelScaling
            The fit's normalisation, recorded for the resume check.
        windows : rrnn_convex.fit.Windows
            The training windows (length and count recorded).
        """
        payload = {}
        meta = {"activation": self.model.activation.to_dict(), "version": CHECKPOINT_VERSION,
                "scaling": scaling.to_dict(), "windows": {"length": windows.length, "count": windows.count}}
        for f in fields(self):
            kind, key, value = f.metadata["kind"], f.metadata["key"], getattr(self, f.name)
            if kind == "model":
                payload |= {f"{key}{k}": v for k, v in value.weights().items()}
                if value.d11_kind == "general":  # the proof of a trained D11's well-posedness
                    payload[f"{key}well_posed_multiplier"] = value.well_posed_multiplier
            elif kind == "array":
                payload[key] = value
            elif kind == "arrays":
                payload |= {f"{key}{k}": v for k, v in value.items()}
            else:
                meta[key] = value
        payload["meta"] = np.array(json.dumps(meta, default=float))
        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)

    @classmethod
    def load(cls, path) -> tuple["FitState", dict]:
        """(state, meta) from a checkpoint written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file.

        Returns
        -------
        state : FitState
            The saved state; fields the checkpoint predates get their ``absent`` value.
        meta : dict
            The checkpoint's JSON metadata: the stored ``json`` fields, ``activation``,
            ``version``, ``scaling`` and ``windows`` (``length``, ``count``).

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            A directory, not a checkpoint (with what it is instead), another format version,
            an incomplete checkpoint or a malformed model.
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"resume: {str(path)!r} is a directory, not a checkpoint file")
        if not path.exists():
            raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
        not_one = f"resume: {str(path)!r} is not a fit checkpoint (the --checkpoint file of rrnn fit)"
        try:
            data = np.load(path, allow_pickle=False)
        except Exception:  # not .npy / .npz: numpy's own message (e.g. about allow_pickle) would mislead
            raise ValueError(f"{not_one}: it is not an .npz file") from None
        if not hasattr(data, "files"):
            raise ValueError(f"{not_one}: it holds a single array")
        with data:
            if "kind" in data.files:
                raise ValueError(f"{not_one}: it is a model file, not a fit checkpoint")
            try:
                meta = json.loads(str(data["meta"])) if "meta" in data.files else None
            except json.JSONDecodeError:
                meta = None
            if not isinstance(meta, dict):
                raise ValueError(f"{not_one}: it has no 'meta' entry holding a JSON object (keys "
                                 f"{sorted(data.files)[:12]})")
            if meta.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"resume: checkpoint format version {meta.get('version')!r} is not the one this "
                                 f"package writes ({CHECKPOINT_VERSION}); start a new fit")
            return cls._from_file(path, data, meta), meta

    @classmethod
    def _from_file(cls, path: Path, data, meta: dict) -> "FitState":
        specs = [(f.name, f.metadata["kind"], f.metadata["key"], f.metadata["absent"]) for f in fields(cls)]
        arrays = {key for _, kind, key, _ in specs if kind == "array"}
        missing = [key for _, kind, key, absent in specs
                   if kind == "array" and absent is _REQUIRED and key not in data.files]
        missing += [f"meta.{k}" for k in ["activation"] + [key for _, kind, key, absent in specs
                                                            if kind == "json" and absent is _REQUIRED]
                    + ["scaling", "windows"] if k not in meta]
        if missing:
            raise ValueError(f"resume: {str(path)!r} is an incomplete checkpoint (missing {missing})")
        values = {}
        try:
            for name, kind, key, absent in specs:
                if kind == "model":
                    values[name] = ImplicitRNN(**{k[len(key):]: data[k] for k in data.files
                                                  if k.startswith(key) and k not in arrays},
                                               activation=meta["activation"])
                elif kind == "array":
                    values[name] = data[key].copy() if key in data.files else absent
                elif kind == "arrays":
                    values[name] = {k[len(key):]: data[k].copy() for k in data.files if k.startswith(key)}
                else:
                    values[name] = meta.get(key, absent)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"resume: {str(path)!r} holds a malformed model ({exc})") from None
        return cls(**values)
