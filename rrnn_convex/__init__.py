"""rrnn_convex: robust recurrent neural networks with convex (LMI) certificates.

Implements Revay, Wang & Manchester, "A Convex Parameterization of Robust Recurrent Neural
Networks": implicit RNNs whose weights lie in the convex sets Theta (contracting) and
Theta_gamma (incremental l2 gain <= gamma). See DESIGN notes in the README.
"""
__version__ = "0.1.0"

from .activations import Activation, get_activation, leaky_relu  # noqa: E402
from .model import ImplicitRNN  # noqa: E402
from .certify import Certificate, Verification, certify  # noqa: E402

__all__ = ["Activation", "get_activation", "leaky_relu", "ImplicitRNN", "Certificate",
           "Verification", "certify", "__version__"]
