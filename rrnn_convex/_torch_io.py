"""Reading torch tensors, a ``torch.nn.RNN`` and its readout as the weights of an implicit RNN.

The one implementation behind :meth:`rrnn_convex.model.ImplicitRNN.from_torch_rnn`,
:func:`rrnn_convex.io_models.from_torch_rnn` and the ``.pt`` loader of
:mod:`rrnn_convex.io_models`: :func:`torch_rnn_weights` returns the keyword arguments of
:class:`~rrnn_convex.model.ImplicitRNN`, so that this module imports neither torch (a tensor is
recognised by its ``detach`` method, a module by its ``state_dict`` method and its class name)
nor the model.
"""
from __future__ import annotations

import re

import numpy as np

from ._validation import as_float_array
from .errors import MissingDependency

#: torch's activation modules a readout may hold, by class name, and the activation they are
_ACTIVATION_MODULES = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
#: modules that are the identity in evaluation mode (dropout only acts while training)
_IDENTITY_MODULES = ("Identity", "Dropout")
_RNN_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


def tensor_array(x, name: str, ndim=None) -> np.ndarray:
    """``x`` (a torch tensor or array-like) as a validated float64 array named ``name``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return as_float_array(x, name, ndim=ndim)


def _is_module(x) -> bool:
    return hasattr(x, "state_dict") and hasattr(x, "named_children")


def _linear(layer, name: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of a ``torch.nn.Linear`` or its state_dict acting on ``width`` inputs."""
    sd = layer.state_dict() if _is_module(layer) else layer
    if "weight" not in sd:
        raise ValueError(f"{name}: expected a torch.nn.Linear or its state_dict, got keys {sorted(sd)}")
    unknown = sorted(set(sd) - {"weight", "bias"})
    if unknown:
        raise ValueError(f"{name}: unexpected keys {unknown} in a torch.nn.Linear state_dict (expected weight, bias)")
    W = tensor_array(sd["weight"], f"{name}.weight")
    if W.ndim != 2 or W.shape[1] != width:
        raise ValueError(f"{name}: expected a weight of shape (k, {width}), got {W.shape}")
    b = tensor_array(sd["bias"], f"{name}.bias") if sd.get("bias") is not None else np.zeros(W.shape[0])
    if b.shape != (W.shape[0],):
        raise ValueError(f"{name}.bias: expected shape ({W.shape[0]},), got {b.shape}")
    return W, b


def _readout_layers(readout) -> list:
    """``readout`` as a list of (name, layer); a layer is a Linear (module or state_dict) or an
    activation name."""
    if readout is None:
        return []
    if isinstance(readout, (tuple, list)) and readout and not any(
            _is_module(r) or isinstance(r, (dict, str)) for r in readout):
        # the pair (C, by) of arrays
        C = tensor_array(readout[0], "readout[0] (C)", ndim=2)
        by = None if len(readout) < 2 or readout[1] is None else readout[1]
        return [("readout", {"weight": C, "bias": by})]
    if _is_module(readout) and type(readout).__name__ != "Sequential":
        return [("readout", readout)]
    if isinstance(readout, dict):
        return [("readout", readout)]
    if _is_module(readout):  # nn.Sequential
        return [(f"readout[{name}]", layer) for name, layer in readout.named_children()]
    if isinstance(readout, (tuple, list)):
        return [(f"readout[{i}]", layer) for i, layer in enumerate(readout)]
    raise TypeError(f"readout: expected a torch.nn.Linear, a torch.nn.Sequential, a state_dict, a list of layers "
                    f"or a pair (C, by), got {type(readout).__name__}")


def readout_weights(readout, width: int, nonlinearity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """The readout of ``width`` hidden units as ``(D11r, bvr, D21, by)``.

    The readout's hidden neurons (one per output of a Linear layer followed by an activation)
    are numbered after the ``width`` inputs: ``D11r`` (k x (width + k)) gives their
    pre-activations from the inputs and the earlier readout neurons (strictly lower triangular
    in the new neurons), ``bvr`` their biases, and ``y = D21 (inputs, neurons) + by``.

    ``readout`` is None (the identity), a ``torch.nn.Linear`` or its state_dict, a pair
    ``(C, by)`` of arrays, or an ``nn.Sequential`` / list of ``Linear`` layers (or their
    state_dicts) and activations (``nn.ReLU``, ``nn.Tanh`` or the names ``"relu"``, ``"tanh"``;
    ``nn.Identity`` and ``nn.Dropout`` are skipped). Raises ValueError for an activation other
    than ``nonlinearity`` (a model has one activation) or any other layer, naming the layer.
    """
    M, c = None, None  # the current signal is M (inputs, neurons) + c; None: the inputs themselves
    rows, biases = [], []
    for name, layer in _readout_layers(readout):
        if isinstance(layer, str) or (_is_module(layer) and type(layer).__name__ in _ACTIVATION_MODULES):
            act = layer if isinstance(layer, str) else _ACTIVATION_MODULES[type(layer).__name__]
            what = repr(layer) if isinstance(layer, str) else type(layer).__name__
            if act != nonlinearity:
                raise ValueError(
                    f"{name} ({what}): the readout's activation {act!r} differs from the RNN's nonlinearity "
                    f"{nonlinearity!r}; an ImplicitRNN has one activation for all its neurons, so a "
                    f"{nonlinearity} RNN with a {act} readout cannot be imported")
            if M is None:
                M, c = np.eye(width), np.zeros(width)
            k, total = M.shape
            rows.append(np.hstack([M, np.zeros((k, k))]))
            biases.append(c)
            rows = [np.hstack([r, np.zeros((r.shape[0], total + k - r.shape[1]))]) for r in rows]
            M = np.hstack([np.zeros((k, total)), np.eye(k)])
            c = np.zeros(k)
        elif _is_module(layer) and type(layer).__name__ in _IDENTITY_MODULES:
            continue
        elif isinstance(layer, dict) or (_is_module(layer) and type(layer).__name__ == "Linear"):
            W, b = _linear(layer, name, width if M is None else M.shape[0])
            M, c = (W, b) if M is None else (W @ M, W @ c + b)
        else:
            raise ValueError(f"{name}: unsupported readout layer {type(layer).__name__}; expected torch.nn.Linear, "
                             f"ReLU or Tanh (Identity and Dropout are skipped)")
    if M is None:
        M, c = np.eye(width), np.zeros(width)
    total = M.shape[1]
    D11r = np.vstack(rows) if rows else np.zeros((0, total))
    bvr = np.concatenate(biases) if biases else np.zeros(0)
    return D11r, bvr, M, c


def _rnn_state_dict(rnn, nonlinearity):
    """(state_dict, nonlinearity) of a ``torch.nn.RNN`` or its state_dict."""
    if _is_module(rnn):
        if type(rnn).__name__ in ("LSTM", "GRU"):
            raise ValueError(f"rnn: torch.nn.{type(rnn).__name__} is not supported: its gates multiply two "
                             f"neuron outputs, which is outside the implicit-RNN class (use torch.nn.RNN)")
        if getattr(rnn, "bidirectional", False):
            raise ValueError("rnn: bidirectional torch.nn.RNN is not supported (the model is causal)")
        if getattr(rnn, "proj_size", 0):
            raise ValueError("rnn: torch.nn.RNN with proj_size is not supported")
        return dict(rnn.state_dict()), nonlinearity or getattr(rnn, "nonlinearity", None)
    if not hasattr(rnn, "keys"):
        raise TypeError(f"rnn: expected a torch.nn.RNN or its state_dict, got {type(rnn).__name__}")
    return dict(rnn), nonlinearity


def torch_rnn_weights(rnn, readout=None, nonlinearity: str | None = None, *, hint: str) -> dict:
    """The keyword arguments of an ``ImplicitRNN`` equal to a stacked ``torch.nn.RNN`` and its readout.

    See :func:`rrnn_convex.io_models.from_torch_rnn` for the construction; ``hint`` is the
    message of the MissingDependency raised when torch is not installed.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingDependency(hint) from None
    sd, nonlinearity = _rnn_state_dict(rnn, nonlinearity)
    nonlinearity = nonlinearity or "tanh"
    if nonlinearity not in ("relu", "tanh"):
        raise ValueError(f"nonlinearity: torch.nn.RNN supports 'relu' or 'tanh', got {nonlinearity!r}")
    unexpected = sorted(str(k) for k in sd if not _RNN_KEY.fullmatch(str(k)))
    if unexpected:
        raise ValueError(f"rnn: unexpected keys {unexpected} in a torch.nn.RNN state_dict (expected "
                         f"weight_ih_l<k>, weight_hh_l<k> and optionally bias_ih_l<k>, bias_hh_l<k>)")
    layers = sorted({int(_RNN_KEY.fullmatch(k).group(2)) for k in sd})
    if not layers or layers != list(range(len(layers))):
        raise ValueError(f"rnn: expected layers 0 .. L-1 (keys *_l0, *_l1, ...), got the keys {sorted(sd)}")

    W_hh, W_ih, b = [], [], []
    for k in layers:
        for key in (f"weight_ih_l{k}", f"weight_hh_l{k}"):
            if key not in sd:
                raise ValueError(f"rnn: state_dict lacks {key} (keys: {sorted(sd)})")
        Whh = tensor_array(sd[f"weight_hh_l{k}"], f"weight_hh_l{k}", ndim=2)
        Wih = tensor_array(sd[f"weight_ih_l{k}"], f"weight_ih_l{k}", ndim=2)
        H = W_hh[0].shape[0] if k else Whh.shape[0]
        if Whh.shape != (H, H):
            raise ValueError(f"weight_hh_l{k}: expected shape ({H}, {H}), got {Whh.shape}")
        if Wih.shape[0] != H or (k and Wih.shape[1] != H):
            expected = f"({H}, m)" if k == 0 else f"({H}, {H})"
            raise ValueError(f"weight_ih_l{k}: expected shape {expected}, got {Wih.shape}")
        bias = np.zeros(H)
        for key in (f"bias_ih_l{k}", f"bias_hh_l{k}"):
            if key in sd:
                bk = tensor_array(sd[key], key)
                if bk.shape != (H,):
                    raise ValueError(f"{key}: expected shape ({H},), got {bk.shape}")
                bias = bias + bk
        W_hh.append(Whh)
        W_ih.append(Wih)
        b.append(bias)
    L, H, m = len(layers), W_hh[0].shape[0], W_ih[0].shape[1]
    n = L * H
    D11r, bvr, Cr, by = readout_weights(readout, H, nonlinearity)
    k = D11r.shape[0]  # the readout's hidden neurons, after the L H neurons of the layers
    q, p = n + k, Cr.shape[0]
    C1 = np.zeros((q, n))
    D11 = np.zeros((q, q))
    for i in range(L):
        C1[i * H:(i + 1) * H, i * H:(i + 1) * H] = W_hh[i]
        if i > 0:
            D11[i * H:(i + 1) * H, (i - 1) * H:i * H] = W_ih[i]
    # the readout acts on the last layer (columns n - H .. n) and on its own earlier neurons
    D11[n:, n - H:] = D11r
    D12 = np.vstack([W_ih[0], np.zeros((q - H, m))])
    D21 = np.hstack([np.zeros((p, n - H)), Cr])
    B1 = np.hstack([np.eye(n), np.zeros((n, k))])
    return dict(E=np.eye(n), F=np.zeros((n, n)), B1=B1, B2=np.zeros((n, m)), C1=C1, D11=D11, D12=D12,
                bv=np.concatenate(b + [bvr]), C2=np.zeros((p, n)), D21=D21, D22=np.zeros((p, m)), by=by,
                activation=nonlinearity)
