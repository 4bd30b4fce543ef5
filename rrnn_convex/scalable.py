"""The KYP certification path's entry point, importable from here as before.

The method (KYP frequency reduction + Riccati metric) lives in :mod:`rrnn_convex.kyp`, its
interior-point solver in :mod:`rrnn_convex.interior_point` and the Riccati solver in
:mod:`rrnn_convex.riccati`; :func:`certify_scalable` and ``AUTO_MIN_SIZE`` live in
:mod:`rrnn_convex.certify`, the dispatcher that also decides the KYP path's exact fallback.
"""
from __future__ import annotations

from .certify import AUTO_MIN_SIZE, certify_scalable
from .kyp import FORMULATION, SOLVER_NAME

__all__ = ["certify_scalable", "AUTO_MIN_SIZE", "FORMULATION", "SOLVER_NAME"]
