"""Experiments that reproduce the paper's results and the measured benchmarks.

* :mod:`~rrnn_convex.experiments.msd` — the paper's comparison (``rrnn experiment msd``);
* :mod:`~rrnn_convex.experiments.generalisation` — the mass-spring-damper generalisation study;
* :mod:`~rrnn_convex.experiments.sysid` — the measured benchmarks (``rrnn benchmark NAME``).

Data folders are passed in or named by ``RRNN_DATA`` (:mod:`rrnn_convex.datasets.folders`).
"""
