"""Reading torch tensors and a ``torch.nn.Linear`` readout as float64 numpy arrays.

Shared by the one-layer importer (:meth:`rrnn_convex.model.ImplicitRNN.from_torch_rnn`) and the
stacked one (:func:`rrnn_convex.io_models.from_torch_rnn`). Imports neither torch nor the model:
a tensor is recognised by its ``detach`` method.
"""
from __future__ import annotations

import numpy as np

from ._validation import as_float_array


def tensor_array(x, name: str, ndim=None) -> np.ndarray:
    """``x`` (a torch tensor or array-like) as a validated float64 array named ``name``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return as_float_array(x, name, ndim=ndim)


def readout_weights(readout, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(C, by)`` of a readout of ``width`` hidden units: a ``torch.nn.Linear``, its state_dict,
    a pair ``(C, by)`` (``by`` may be missing or None), or None (the identity, zero bias).

    Raises ValueError for a state_dict without ``weight`` or a weight not shaped (p, width).
    """
    if readout is None:
        return np.eye(width), np.zeros(width)
    if isinstance(readout, (tuple, list)):
        C = tensor_array(readout[0], "readout[0] (C)")
        no_bias = len(readout) < 2 or readout[1] is None
        by = np.zeros(C.shape[0]) if no_bias else tensor_array(readout[1], "readout[1] (by)")
    else:
        rsd = readout.state_dict() if hasattr(readout, "state_dict") else readout
        if "weight" not in rsd:
            raise ValueError(f"readout: expected a torch.nn.Linear or its state_dict, got keys {sorted(rsd)}")
        C = tensor_array(rsd["weight"], "readout.weight")
        by = tensor_array(rsd["bias"], "readout.bias") if rsd.get("bias") is not None else np.zeros(C.shape[0])
    if C.ndim != 2 or C.shape[1] != width:
        raise ValueError(f"readout: expected a weight of shape (p, {width}), got {C.shape}")
    return C, by
