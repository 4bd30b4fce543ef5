"""Baselines for the comparisons: an LSTM (Levenberg-Marquardt with casadi Jacobians), the Elman
RNN is ``RobustRNNRegressor(model_set="elman")`` (the SCP trainer, Elman structure, no constraint) and the paper's own training method (log-det barrier +
Adam, :class:`BarrierSGD`)."""
from .barrier import BarrierSGD, simulation_gradient
from .lm import LMResult, casadi_linearize, train_lm
from .lstm import LSTM, LSTMRegressor

__all__ = ["LSTM", "LSTMRegressor", "LMResult", "casadi_linearize", "train_lm",
           "BarrierSGD", "simulation_gradient"]
