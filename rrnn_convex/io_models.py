"""Reading a model from any supported file: one entry point for the ``rrnn`` command.

:func:`load_any_model` accepts

* ``.npz`` written by :meth:`ImplicitRNN.save <rrnn_convex.model.ImplicitRNN.save>` (its
  ``meta`` dict, if any, is returned as :attr:`LoadedModel.meta`);
* ``.npz`` or ``.json`` holding the arrays of an Elman RNN
  ``h[t+1] = sigma(W h[t] + U u[t] + b)``, ``y[t] = C h[t] + D u[t]``: ``W`` (n x n),
  ``U`` (n x m) and ``activation`` (a name: ``"relu"``, ``"tanh"``, ``"sigmoid"``,
  ``"leaky_relu"``, ``"identity"``) are required; ``b`` (zeros), ``C`` (the identity: output =
  state) and ``D`` (zeros) are optional, with those defaults (docs/design.md section 2.4,
  :meth:`ImplicitRNN.from_elman <rrnn_convex.model.ImplicitRNN.from_elman>`);
* ``.npz`` holding the explicit weights of a recurrent equilibrium network (REN): any key among
  ``A`` (or ``E``, ``F``), ``B1``, ``B2``, ``C1``, ``C2``, ``D11``, ``D12``, ``D21``, ``D22``,
  ``bx``, ``bv``, ``by`` (:data:`REN_NAMES`, the arguments of :func:`from_ren`; ``activation`` a
  name, ``"relu"`` when absent) makes the file a REN file, read by :func:`from_ren`;
* ``.pt`` / ``.pth`` written by :func:`save_torch` (``rrnn export MODEL --to torch OUT.pt``): a
  dict with ``"format": "rrnn_convex.ImplicitRNN"``, the model's own float64 weights and its
  activation, read back to the identical model (same weights hash);
* ``.pt`` / ``.pth``: a PyTorch ``state_dict`` (``torch.save(net.state_dict(), path)``) holding
  one unidirectional ``torch.nn.RNN`` with any number of layers (keys
  ``<prefix>weight_ih_l<k>``, ``<prefix>weight_hh_l<k>``, optional ``<prefix>bias_ih_l<k>``,
  ``<prefix>bias_hh_l<k>`` for k = 0 .. L-1; the RNN is found by its ``weight_ih_l0`` key) and
  at most one readout: a ``torch.nn.Linear`` (keys ``<name>.weight``, optional ``<name>.bias``)
  or a ``torch.nn.Sequential`` of Linear layers and activations (keys
  ``<name>.<i>.weight``, ``<name>.<i>.bias``). Nested dicts such as
  ``{"rnn": rnn.state_dict(), "readout": mlp.state_dict(), "nonlinearity": "relu"}`` work too.
  A state_dict records neither the RNN's nonlinearity nor the readout's activation layers
  (they have no weights):

  - the nonlinearity is read from a ``"nonlinearity"`` entry of the file, or must be given
    (``nonlinearity=``; ``rrnn ... --nonlinearity``);
  - in a Sequential readout every index missing from the numbering of its Linear layers
    (``0.weight``, ``2.weight``: index 1) is one activation layer of that nonlinearity (a model
    has one activation for all its neurons), two or more missing indices in a row are refused;
    a readout ending in an activation leaves no trace, so a file whose readout is not
    ``Linear (act Linear)*`` must say what it holds in a string entry ``"readout_layers"``,
    e.g. ``"linear,relu,linear,relu"`` (one ``linear`` per Linear layer, in order).

  Files are read with ``torch.load(..., weights_only=True)``, so pickled modules are refused.
  Needs the ``torch`` extra.

:func:`from_torch_rnn` (and :meth:`ImplicitRNN.from_torch_rnn
<rrnn_convex.model.ImplicitRNN.from_torch_rnn>`, the same function) imports the modules from
Python: stacked layers and MLP readouts become a block-lower-triangular ``D11``.

Every model is converted to an :class:`~rrnn_convex.model.ImplicitRNN`; a certificate's model
hash names that converted model, so the same file always gives the same hash. A file of the
wrong kind raises ValueError saying what was found and what was expected; a missing file
raises FileNotFoundError.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_path, check_input_file, reject_booleans, strict_json
from ._validation import as_float_array
from ._torch_io import torch_rnn_weights
from .errors import MissingDependency
from .model import ImplicitRNN
from .shapes import WEIGHT_FIELDS

__all__ = ["LoadedModel", "load_any_model", "load_model_file", "from_torch_rnn", "from_ren", "save_torch",
           "REN_NAMES", "MODEL_SUFFIXES", "TORCH_FORMAT"]

MODEL_SUFFIXES = (".npz", ".json", ".pt", ".pth")
#: the names of the explicit REN's weights accepted by :func:`from_ren` (also as dict / .npz keys)
REN_NAMES = ("A", "E", "F", "B1", "B2", "C1", "C2", "D11", "D12", "D21", "D22", "bx", "bv", "by", "activation")
ELMAN_REQUIRED = ("W", "U", "activation")
ELMAN_OPTIONAL = ("b", "C", "D")
_TORCH_HINT = 'reading PyTorch .pt files needs torch: pip install "rrnn_convex[torch]"'
#: the ``format`` entry of the PyTorch files written by :func:`save_torch`
TORCH_FORMAT = "rrnn_convex.ImplicitRNN"
TORCH_FORMAT_VERSION = 1
_RNN_FILE_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh)_l\d+")


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a file: the converted model, a one-line description of the source and
    the metadata the file records (``meta`` of :meth:`ImplicitRNN.save
    <rrnn_convex.model.ImplicitRNN.save>`, e.g. input / output column names; empty for files
    without it and for Elman / PyTorch files).

    Parameters
    ----------
    model : ImplicitRNN
        The converted model.
    kind : {"rrnn_convex", "elman-npz", "elman-json", "ren-npz", "torch", "rrnn_convex-torch"}
        What kind of file it came from.
    description : str
        One line naming the source (and the defaults used for missing Elman arrays).
    meta : dict
        The file's metadata.
    """

    model: ImplicitRNN
    kind: str  # "rrnn_convex", "elman-npz", "elman-json", "ren-npz", "torch" or "rrnn_convex-torch"
    description: str
    meta: dict = field(default_factory=dict)


def load_any_model(path, *, nonlinearity: str | None = None) -> ImplicitRNN:
    """The :class:`~rrnn_convex.model.ImplicitRNN` stored in ``path`` (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz``, ``.json``, ``.pt`` or ``.pth`` file.
    nonlinearity : {"relu", "tanh"}, optional
        Only used for PyTorch files that do not record it.

    Returns
    -------
    ImplicitRNN

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The wrong kind of file (saying what was found and what was expected) or bad arrays.
    rrnn_convex.errors.MissingDependency
        A ``.pt`` file without torch installed (an ImportError).
    """
    return load_model_file(path, nonlinearity=nonlinearity).model


def load_model_file(path, *, nonlinearity: str | None = None) -> LoadedModel:
    """Like :func:`load_any_model`, also returning what kind of file it was.

    Parameters
    ----------
    path, nonlinearity
        As in :func:`load_any_model`.

    Returns
    -------
    LoadedModel
        The model, the kind of file, a description and the file's metadata.

    Raises
    ------
    FileNotFoundError, ValueError, rrnn_convex.errors.MissingDependency
        As :func:`load_any_model`.
    """
    path = check_input_file(path, "model")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".json":
        return _load_json(path)
    if suffix in (".pt", ".pth"):
        return _load_torch(path, nonlinearity)
    raise ValueError(f"model: unsupported file type {path.suffix or '(no extension)'!r} for {path.name!r}; "
                     f"expected one of {', '.join(MODEL_SUFFIXES)}")


# ---------------------------------------------------------------------- numpy / json
def _elman(arrays: dict, where: str, kind: str) -> LoadedModel:
    """An Elman RNN from a mapping of arrays (W, U, activation required; b, C, D optional)."""
    missing = [k for k in ELMAN_REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"model: {where} is not an rrnn_convex model file: expected an ImplicitRNN saved by "
                         f"ImplicitRNN.save, or Elman arrays W, U, activation (optional b, C, D); "
                         f"missing {missing}, found keys {sorted(arrays)}")
    extra = sorted(set(arrays) - set(ELMAN_REQUIRED) - set(ELMAN_OPTIONAL))
    if extra:
        raise ValueError(f"model: {where}: unexpected keys {extra} in an Elman model file "
                         f"(expected W, U, activation and optionally b, C, D)")
    act = arrays["activation"]
    if isinstance(act, np.ndarray):
        if act.ndim != 0 or act.dtype.kind not in "US":
            raise ValueError(f"model: {where}: 'activation' must be a string such as 'relu', got an array "
                             f"of shape {act.shape} and dtype {act.dtype}")
        act = str(act)
    if not isinstance(act, str):
        raise ValueError(f"model: {where}: 'activation' must be a string such as 'relu', got {act!r}")
    defaulted = [k for k in ELMAN_OPTIONAL if k not in arrays]
    try:
        model = ImplicitRNN.from_elman(arrays["W"], arrays["U"], arrays.get("b"), arrays.get("C"), arrays.get("D"),
                                       activation=act)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model: {where}: {exc}") from None
    note = f"; defaults used for {', '.join(defaulted)}" if defaulted else ""
    return LoadedModel(model, kind, f"Elman RNN (W, U, b, C, D) from {where}{note}")


def _open_npz(path: Path, arg: str):
    """``np.load`` of an .npz archive of named arrays (no pickle); a ValueError naming ``arg``
    and the file when it is unreadable or a single array."""
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile / format errors
        raise ValueError(f"{arg}: {str(path)!r} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if not hasattr(data, "files"):
        raise ValueError(f"{arg}: {str(path)!r} holds a single array, not an .npz archive of named arrays")
    return data


def _load_npz(path: Path) -> LoadedModel:
    with _open_npz(path, "model") as data:
        keys = list(data.files)
        if "kind" in keys:
            return LoadedModel(ImplicitRNN.load(path), "rrnn_convex", f"rrnn_convex ImplicitRNN ({path.name})",
                               ImplicitRNN.read_meta(path))
        if any(k.endswith("data.pkl") for k in keys):
            raise ValueError(f"model: {str(path)!r} looks like a PyTorch file (torch.save); name it .pt")
        try:
            arrays = {k: data[k] for k in keys}
        except ValueError as exc:  # object arrays need pickle
            raise ValueError(f"model: {str(path)!r} holds arrays that need pickle to read ({exc})") from None
    if set(keys) & (set(REN_NAMES) - {"activation"}):
        try:
            model = from_ren(path)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model: {str(path)!r} (explicit REN weights): {exc}") from None
        act = "" if "activation" in keys else "; activation relu (the default, not in the file)"
        return LoadedModel(model, "ren-npz", f"REN weights (explicit form) from {path.name!r}{act}")
    return _elman(arrays, repr(path.name), "elman-npz")


def _load_json(path: Path) -> LoadedModel:
    try:
        obj = strict_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"model: {str(path)!r} is not a text (JSON) file") from None
    except ValueError as exc:  # JSONDecodeError is one, and a duplicate key
        raise ValueError(f"model: {str(path)!r} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"model: {str(path)!r} must hold a JSON object with keys W, U, activation "
                         f"(optional b, C, D), got a {type(obj).__name__}")
    if obj.get("schema") == "rrnn_convex.certificate":
        raise ValueError(f"model: {str(path)!r} is a certificate, not a model")
    for k in ELMAN_REQUIRED[:2] + ELMAN_OPTIONAL:
        try:
            reject_booleans(obj.get(k), k)
        except ValueError as exc:
            raise ValueError(f"model: {path.name!r}: {exc}") from None
    return _elman(obj, repr(path.name), "elman-json")


# ---------------------------------------------------------------------- torch
def _flatten(obj, prefix: str = "") -> dict:
    """Nested dicts of tensors -> one dict with dotted keys (a state_dict's own layout)."""
    out = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _torch_load(path: Path):
    """``torch.load`` of ``path`` with weights only (no pickled objects), errors as ValueError."""
    try:
        import torch
    except ImportError:
        raise MissingDependency(_TORCH_HINT) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors, refused globals, corrupt archives
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
        if "Weights only load failed" in text:
            why = "it holds pickled Python objects (e.g. a whole nn.Module), which are not loaded for safety"
        else:
            why = f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else 'unreadable'}"
        raise ValueError(f"model: {str(path)!r} is not a PyTorch state_dict file ({why}); save one with "
                         f"torch.save(net.state_dict(), path)") from None
    if not isinstance(obj, dict):
        raise ValueError(f"model: {str(path)!r} holds a {type(obj).__name__}, not a state_dict (dict of tensors); "
                         f"save it with torch.save(net.state_dict(), path)")
    return torch, obj


def _load_torch(path: Path, nonlinearity: str | None) -> LoadedModel:
    torch, obj = _torch_load(path)
    if obj.get("format") == TORCH_FORMAT:
        return _load_exported(path, obj, nonlinearity, torch)
    flat = _flatten(obj)
    stored = {k: v for k, v in flat.items() if isinstance(v, str)}
    file_nl = layer_spec = None
    for k, v in stored.items():
        if k.split(".")[-1] == "nonlinearity":
            file_nl = v
        elif k.split(".")[-1] == "readout_layers":
            layer_spec = v
    others = sorted(k for k, v in flat.items() if not isinstance(v, str) and not torch.is_tensor(v))
    if others:
        raise ValueError(f"model: {str(path)!r}: entries {others} are neither tensors nor strings")
    tensors = {k: v for k, v in flat.items() if torch.is_tensor(v)}
    ih = [k for k in tensors if k.endswith("weight_ih_l0")]
    if len(ih) != 1:
        what = "no torch.nn.RNN (no key ending in weight_ih_l0)" if not ih else f"{len(ih)} RNNs ({ih})"
        raise ValueError(f"model: {str(path)!r} holds {what}; expected one torch.nn.RNN "
                         f"(keys: {sorted(tensors)[:12]})")
    pre = ih[0][: -len("weight_ih_l0")]
    rnn = {k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre) and _RNN_FILE_KEY.fullmatch(k[len(pre):])}
    rest = {k: v for k, v in tensors.items() if not (k.startswith(pre) and k[len(pre):] in rnn)}
    layered = sorted(k for k in rest if k.startswith(pre) and re.search(r"_l\d+(_reverse)?$", k))
    if layered:
        raise ValueError(f"model: {str(path)!r}: only unidirectional torch.nn.RNN without proj_size is supported, "
                         f"found {layered}")
    if file_nl is not None and nonlinearity is not None and file_nl != nonlinearity:
        raise ValueError(f"nonlinearity: the file records {file_nl!r}, but {nonlinearity!r} was given")
    nl = file_nl or nonlinearity
    if nl is None:
        raise ValueError(f"model: {str(path)!r} is a state_dict, which does not record the RNN's nonlinearity; "
                         f"give it with --nonlinearity tanh|relu (torch's default is tanh) or store "
                         f"'nonlinearity' in the file")
    if nl not in ("relu", "tanh"):
        raise ValueError(f"nonlinearity: torch.nn.RNN supports 'relu' or 'tanh', got {nl!r}")
    readout, ro = _file_readout(path, rest, nl, layer_spec)
    try:
        model = from_torch_rnn(rnn, readout=readout, nonlinearity=nl)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model: {str(path)!r}: {exc}") from None
    layers = len({k.rsplit("_l", 1)[1] for k in rnn})
    src = "from the file" if file_nl else "given"
    return LoadedModel(model, "torch", f"torch.nn.RNN ({nl}, {src}; {layers} layer{'s' * (layers > 1)}) + {ro} "
                                       f"from {path.name!r}")


def _file_readout(path: Path, rest: dict, nl: str, layer_spec: str | None):
    """The readout layers of a .pt file's tensors besides the RNN, and a description."""
    if not rest:
        if layer_spec:
            raise ValueError(f"model: {str(path)!r}: 'readout_layers' is {layer_spec!r}, but the file holds no "
                             f"readout weights")
        return None, "no readout (output = hidden state)"
    bad = sorted(k for k in rest if not (k in ("weight", "bias") or k.endswith((".weight", ".bias"))))
    modules = sorted({k.rpartition(".")[0] for k in rest})
    if bad:
        raise ValueError(f"model: {str(path)!r}: unexpected keys {bad} besides the RNN and a readout of "
                         f"torch.nn.Linear layers (keys <name>.weight, <name>.bias)")
    linears = []
    if len(modules) == 1:
        linears = [(None, modules[0])]
    else:
        parents = {m.rpartition(".")[0] for m in modules}
        indices = [m.rpartition(".")[2] for m in modules]
        if len(parents) != 1 or not all(i.isdigit() for i in indices):
            raise ValueError(f"model: {str(path)!r}: expected at most one readout (a torch.nn.Linear, or a "
                             f"torch.nn.Sequential whose layers are numbered), found the modules {modules}")
        parent = parents.pop()
        linears = sorted((int(i), f"{parent}.{i}" if parent else i) for i in indices)
    layers = []
    for name, module in linears:
        prefix = f"{module}." if module else ""
        if prefix + "weight" not in rest:
            raise ValueError(f"model: {str(path)!r}: readout layer {module!r} has a bias but no weight")
        layers.append({k: rest[prefix + k] for k in ("weight", "bias") if prefix + k in rest})
    if layer_spec is not None:
        kinds = [k.strip().lower() for k in layer_spec.split(",")]
        wrong = [k for k in kinds if k not in ("linear", "relu", "tanh")]
        if wrong or kinds.count("linear") != len(layers):
            raise ValueError(f"model: {str(path)!r}: 'readout_layers' must list 'linear', 'relu' or 'tanh' "
                             f"(comma-separated) with one 'linear' per Linear layer in the file ({len(layers)}), "
                             f"got {layer_spec!r}")
        it = iter(layers)
        readout = [next(it) if k == "linear" else k for k in kinds]
    elif linears[0][0] is None:
        readout = layers
    else:  # a Sequential: every gap of one index in the numbering is one activation layer
        readout, last = [], -1
        for (index, module), layer in zip(linears, layers):
            gap = index - last - 1
            if gap > 1:
                raise ValueError(f"model: {str(path)!r}: readout layer {module!r} follows {gap} layers without "
                                 f"weights; only one activation between Linear layers can be inferred (store "
                                 f"'readout_layers', e.g. 'linear,{nl},linear', to say what the readout holds)")
            readout += [nl] * gap + [layer]
            last = index
    hidden = sum(1 for r in readout if isinstance(r, str))
    what = ("Linear readout" if len(readout) == 1 else
            f"MLP readout ({len(layers)} Linear, {hidden} {nl} layer{'s' * (hidden != 1)})")
    return readout, what


def _load_exported(path: Path, obj: dict, nonlinearity: str | None, torch) -> LoadedModel:
    """A model written by :func:`save_torch`."""
    version = obj.get("format_version")
    if type(version) is not int or version != TORCH_FORMAT_VERSION:
        raise ValueError(f"model: {str(path)!r}: format_version {version!r} is not one this package reads "
                         f"({TORCH_FORMAT_VERSION})")
    weights, act = obj.get("weights"), obj.get("activation")
    if not isinstance(weights, dict) or not isinstance(act, str):
        raise ValueError(f"model: {str(path)!r}: an {TORCH_FORMAT} file needs a dict 'weights' and a JSON string "
                         f"'activation'")
    unknown = sorted(set(obj) - {"format", "format_version", "weights", "activation", "meta"})
    names = WEIGHT_FIELDS + ("D11",)
    unknown += sorted(f"weights.{k}" for k in weights if k not in names)
    if unknown:
        raise ValueError(f"model: {str(path)!r}: unexpected entries {unknown} in an {TORCH_FORMAT} file")
    bad = sorted(k for k, v in weights.items() if not (torch.is_tensor(v) and v.dtype == torch.float64))
    if bad:
        raise ValueError(f"model: {str(path)!r}: weights {bad} are not float64 tensors")
    try:
        activation = strict_json(act)
        model = ImplicitRNN(**{k: v.numpy() for k, v in weights.items()}, activation=activation)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model: {str(path)!r}: {exc}") from None
    if nonlinearity is not None and nonlinearity != model.activation.name:
        raise ValueError(f"nonlinearity: the file records {model.activation.name!r}, but {nonlinearity!r} was given")
    meta = obj.get("meta", "{}")
    try:
        meta = strict_json(meta) if isinstance(meta, str) else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"model: {str(path)!r}: 'meta' must be a JSON object string")
    return LoadedModel(model, "rrnn_convex-torch", f"rrnn_convex ImplicitRNN exported to torch ({path.name})", meta)


def save_torch(model: ImplicitRNN, path, *, meta: dict | None = None) -> Path:
    """Write ``model`` to a PyTorch file (``.pt``) that :func:`load_any_model` reads back exactly.

    The file is ``torch.save`` of a plain dict (readable with ``torch.load(path,
    weights_only=True)``, no pickled code)::

        {"format": "rrnn_convex.ImplicitRNN", "format_version": 1,
         "activation": '{"name": "relu", "alpha": 0.0, "beta": 1.0, "slope": 0.0}',
         "weights": {"E": ..., "F": ..., "B1": ..., "B2": ..., "C1": ..., "C2": ...,
                     "D12": ..., "D21": ..., "D22": ..., "bx": ..., "bv": ..., "by": ...,
                     "D11": ...},   # float64 tensors; D11 only when nonzero
         "meta": "{...}"}           # the JSON of ``meta`` (input / output names etc.)

    The weights are the model's own float64 arrays (the implicit form, not ``E^-1 F``), so the
    model read back has the same :meth:`~rrnn_convex.model.ImplicitRNN.weights_hash` and every
    certificate of the model verifies against it. In torch,
    ``load_any_model(path).to_torch()`` gives the module (see
    :meth:`~rrnn_convex.model.ImplicitRNN.to_torch`). The file is written atomically. Needs the
    ``torch`` extra.

    Parameters
    ----------
    model : ImplicitRNN
        The model.
    path : str or os.PathLike
        The file to write (any name; ``.pt`` is the convention).
    meta : dict, optional
        JSON-serialisable metadata, returned as :attr:`LoadedModel.meta` on reading.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    rrnn_convex.errors.MissingDependency
        torch is not installed (an ImportError).
    TypeError
        ``meta`` is not JSON-serialisable.
    """
    try:
        import torch
    except ImportError:
        raise MissingDependency(_TORCH_HINT.replace("reading", "writing")) from None
    path = Path(path)
    doc = {"format": TORCH_FORMAT, "format_version": TORCH_FORMAT_VERSION,
           "activation": json.dumps(model.activation.to_dict(), sort_keys=True),
           "weights": {k: torch.tensor(np.array(v, dtype=np.float64)) for k, v in model.weights().items()},
           "meta": json.dumps(meta or {}, sort_keys=True, allow_nan=False)}
    with atomic_path(path, suffix=".pt") as tmp:
        with open(tmp, "wb") as fh:
            torch.save(doc, fh)
    return path


def from_torch_rnn(rnn, readout=None, nonlinearity: str | None = None) -> ImplicitRNN:
    """Import a ``torch.nn.RNN`` with one or more stacked layers (relu or tanh) and its readout.

    torch computes, for layers ``k = 1 .. L`` (all of hidden size H) and ``h^0_t = u_t``,
    ``h^k_t = sigma(W_ih^k h^(k-1)_t + b_ih^k + W_hh^k h^k_(t-1) + b_hh^k)``, and the readout
    acts on ``h^L_t``. The implicit form takes as state all layers' previous hidden states and
    as neurons all layers' new ones, layer after layer, then the readout's hidden neurons:

    * ``x[t] = (h^1_(t-1), ..., h^L_(t-1))`` (n = L H), ``w[t] = (h^1_t, ..., h^L_t, r_t)``
      (q = L H + the readout's hidden units);
    * ``C1 = blockdiag(W_hh^1 .. W_hh^L)`` (zero rows for the readout), ``D12 = [W_ih^1; 0]``,
      ``bv`` the summed biases, then the readout's hidden biases;
    * ``D11`` block-lower-triangular: block (k, k - 1) is ``W_ih^k`` (layer k reads layer k - 1
      at the same time step), and each hidden layer of an MLP readout reads the one before it
      (the first reads ``h^L_t``), so the neurons are evaluated layer by layer
      (:attr:`~rrnn_convex.model.ImplicitRNN.neuron_levels`), no equilibrium is solved;
    * ``B1 = [I 0]`` (the readout's neurons do not enter the state), ``F = 0``, ``B2 = 0``,
      ``C2 = 0``; ``D21`` and ``by`` the readout's last Linear layer acting on its last hidden
      layer (or on ``h^L_t`` for a Linear readout; consecutive Linear layers are multiplied).

    Simulating from ``x0 = h_0.transpose(1, 0, 2).reshape(batch, L * H)`` (torch's ``h_0`` has
    shape (L, batch, H)) reproduces torch's outputs; ``batch_first`` does not matter for the
    weights. With one layer and a Linear readout (or none) the result is the Elman form with
    ``D11 = 0``. Dropout (between layers or in the readout) acts only in training mode and is
    ignored. :meth:`ImplicitRNN.from_torch_rnn <rrnn_convex.model.ImplicitRNN.from_torch_rnn>`
    is the same function. Requires the ``torch`` extra.

    An :class:`~rrnn_convex.model.ImplicitRNN` has one activation for all its neurons, so the
    readout's activations must be the RNN's nonlinearity: a tanh RNN with a ReLU readout raises
    ValueError naming the layer and both activations.

    Parameters
    ----------
    rnn : torch.nn.RNN or dict
        The module (unidirectional, no projection) or its ``state_dict`` (keys
        ``weight_ih_l<k>``, ``weight_hh_l<k>``, optional ``bias_ih_l<k>``, ``bias_hh_l<k>``).
    readout : torch.nn.Linear, torch.nn.Sequential, dict, list, tuple or None
        The readout of the last layer: a ``Linear`` or its state_dict; an ``nn.Sequential`` (or
        a list) of ``Linear`` layers (or their state_dicts) and ``nn.ReLU`` / ``nn.Tanh``
        layers (or the names ``"relu"`` / ``"tanh"``; ``nn.Identity`` and ``nn.Dropout`` are
        skipped); a pair ``(C, by)`` of arrays; or None (output = the last layer's hidden
        state).
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
        A bidirectional module or one with ``proj_size``, an LSTM or GRU, an unknown
        nonlinearity, a readout layer that is neither Linear nor the RNN's activation (naming
        the layer), missing, unexpected or non-consecutive layer keys, or shapes that do not fit.
    TypeError
        ``rnn`` or ``readout`` of an unsupported type.
    """
    return ImplicitRNN(**torch_rnn_weights(rnn, readout, nonlinearity, hint=_TORCH_HINT))


# ---------------------------------------------------------------------- recurrent equilibrium networks
def _ren_arrays(source) -> dict:
    """The arrays of ``source`` (a mapping or an .npz path) under the names of REN_NAMES."""
    if isinstance(source, (str, Path)) or hasattr(source, "__fspath__"):
        path = check_input_file(source, "ren")
        with _open_npz(path, "ren") as data:
            out = {k: data[k] for k in data.files}
        if "activation" in out:
            act = out["activation"]
            if act.ndim != 0 or act.dtype.kind not in "US":
                raise ValueError(f"ren: 'activation' in {str(path)!r} must be a string, got an array of shape "
                                 f"{act.shape} and dtype {act.dtype}")
            out["activation"] = str(act)
        return out
    if hasattr(source, "keys"):
        return {k: source[k] for k in source.keys()}
    raise TypeError(f"ren: expected a mapping of arrays or the path of an .npz file, got {type(source).__name__}")


def from_ren(weights=None, /, *, A=None, E=None, F=None, B1=None, B2=None, C1=None, C2=None, D11=None, D12=None,
             D21=None, D22=None, bx=None, bv=None, by=None, activation=None) -> ImplicitRNN:
    """An :class:`~rrnn_convex.model.ImplicitRNN` from the explicit weights of a recurrent equilibrium network.

    The explicit REN (Revay, Wang and Manchester, "Recurrent Equilibrium Networks", IEEE TAC
    2023), as the JAX REN package and RobustNeuralNetworks.jl store it after converting the
    direct parameterisation, is

    * ``x[t+1] = A x[t] + B1 w[t] + B2 u[t] + bx``,
    * ``v[t] = C1 x[t] + D11 w[t] + D12 u[t] + bv``, ``w[t] = sigma(v[t])``,
    * ``y[t] = C2 x[t] + D21 w[t] + D22 u[t] + by``.

    An explicit ``A`` gives ``E = I`` and ``F = A``; the implicit form ``E x[t+1] = F x[t] + ...``
    is accepted instead by giving ``E`` and ``F`` (``E`` defaults to the identity). ``D11`` is
    usually strictly lower triangular (then the neurons are evaluated one after the other);
    a general ``D11`` must be proved well posed (see :class:`~rrnn_convex.model.ImplicitRNN`).
    The sizes are taken from ``B1`` (n x q), ``B2`` (n x m) and ``C2`` (p x n); every other
    matrix is checked against them.

    Parameters
    ----------
    weights : mapping or str or os.PathLike, optional
        A dict (or any mapping) with some of the names below, or the path of an ``.npz`` file
        holding them (e.g. ``np.savez(path, A=..., B1=..., ...)``). Keyword arguments given
        explicitly take precedence over its entries; other keys are refused.
    A : array_like, shape (n, n), optional
        The explicit state matrix; excludes ``E`` and ``F``.
    E, F : array_like, shape (n, n), optional
        The implicit form instead of ``A`` (``E`` invertible, the identity by default).
    B1 : array_like, shape (n, q)
    B2 : array_like, shape (n, m)
    C1 : array_like, shape (q, n)
    C2 : array_like, shape (p, n)
    D11 : array_like, shape (q, q), optional
        Zeros when not given.
    D12 : array_like, shape (q, m)
    D21 : array_like, shape (p, q)
    D22 : array_like, shape (p, m)
    bx : array_like, shape (n,), optional
    bv : array_like, shape (q,), optional
    by : array_like, shape (p,), optional
        Biases, zeros when not given; a (k, 1) or (1, k) array is accepted.
    activation : str or Activation, optional
        The neurons' activation; ``"relu"`` by default (the packages' ``relu`` / ``tanh`` /
        ``sigmoid`` names are the same here).

    Returns
    -------
    ImplicitRNN
        ``E x+ = F x + B1 w + B2 u + bx`` with the weights above (``E = I``, ``F = A`` for an
        explicit ``A``).

    Raises
    ------
    ValueError
        A missing matrix, both ``A`` and ``F`` (or ``A`` and ``E``), a matrix whose shape does not
        fit (naming it, its shape and the expected shape and where the sizes come from), an
        unknown key in ``weights``, or whatever :class:`~rrnn_convex.model.ImplicitRNN` refuses
        (NaN, a singular ``E``, a ``D11`` not known to be well posed).
    TypeError
        ``weights`` is neither a mapping nor a path, or a weight is not an array of real numbers.
    FileNotFoundError
        ``weights`` names a file that does not exist.
    """
    given = dict(A=A, E=E, F=F, B1=B1, B2=B2, C1=C1, C2=C2, D11=D11, D12=D12, D21=D21, D22=D22, bx=bx, bv=bv,
                 by=by, activation=activation)
    if weights is not None:
        arrays = _ren_arrays(weights)
        unknown = sorted(str(k) for k in arrays if k not in REN_NAMES)
        if unknown:
            raise ValueError(f"ren: unexpected keys {unknown}; expected some of {', '.join(REN_NAMES)}")
        for k, v in arrays.items():
            if given[k] is None:
                given[k] = v
    act = given.pop("activation")
    act = "relu" if act is None else act
    if given["A"] is not None and (given["F"] is not None or given["E"] is not None):
        raise ValueError("ren: give either the explicit A or the implicit E, F, not both")
    missing = [k for k in ("B1", "B2", "C1", "C2", "D12", "D21", "D22") if given[k] is None]
    if given["A"] is None and given["F"] is None:
        missing.insert(0, "A (or F)")
    if missing:
        raise ValueError(f"ren: missing {', '.join(missing)}")
    arr = {k: (None if v is None else as_float_array(v, k)) for k, v in given.items()}
    for k in ("A", "E", "F", "B1", "B2", "C1", "C2", "D11", "D12", "D21", "D22"):
        if arr[k] is not None and arr[k].ndim != 2:
            raise ValueError(f"{k}: expected a matrix (2-d array), got shape {arr[k].shape}")
    (n, q), m, p = arr["B1"].shape, arr["B2"].shape[1], arr["C2"].shape[0]
    sizes = f"n={n}, q={q} from B1 {arr['B1'].shape}, m={m} from B2 {arr['B2'].shape}, p={p} from C2 {arr['C2'].shape}"
    expected = dict(A=(n, n), E=(n, n), F=(n, n), B2=(n, m), C1=(q, n), C2=(p, n), D11=(q, q), D12=(q, m),
                    D21=(p, q), D22=(p, m))
    for k, shape in expected.items():
        if arr[k] is not None and arr[k].shape != shape:
            raise ValueError(f"{k}: has shape {arr[k].shape}, expected {shape} ({sizes})")
    for k, size in (("bx", n), ("bv", q), ("by", p)):
        b = arr[k]
        if b is not None and (b.size != size or (b.ndim == 2 and 1 not in b.shape) or b.ndim > 2):
            raise ValueError(f"{k}: has shape {b.shape}, expected ({size},) ({sizes})")
    if arr["A"] is not None:
        E_, F_ = np.eye(n), arr["A"]
    else:
        E_, F_ = (np.eye(n) if arr["E"] is None else arr["E"]), arr["F"]
    return ImplicitRNN(E=E_, F=F_, B1=arr["B1"], B2=arr["B2"], C1=arr["C1"], C2=arr["C2"], D11=arr["D11"],
                       D12=arr["D12"], D21=arr["D21"], D22=arr["D22"], bx=arr["bx"], bv=arr["bv"], by=arr["by"],
                       activation=act)
