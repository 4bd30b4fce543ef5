"""rrnn_convex: robust recurrent neural networks with convex (LMI) certificates.

Implements Revay, Wang & Manchester, "A Convex Parameterization of Robust Recurrent Neural
Networks": implicit RNNs whose weights lie in the convex sets Theta (contracting) and
Theta_gamma (incremental l2 gain <= gamma). The design, with the LMIs and their signs, is
docs/design.md in the repository.
"""
from ._version import __version__
from .activations import Activation, get_activation, leaky_relu
from .model import ImplicitRNN
from .certify import Certificate, Verification, certify

__all__ = ["Activation", "get_activation", "leaky_relu", "ImplicitRNN", "Certificate",
           "Verification", "certify", "__version__"]
