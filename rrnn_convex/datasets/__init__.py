"""Data for identification: the paper's mass-spring-damper example, real benchmarks, your own files.

* :class:`SequenceData` — the validated container (u: (batch, T, m), y: (batch, T, p), float64),
  with :func:`read_csv` and :func:`read_npz` for your own data;
* :mod:`~rrnn_convex.datasets.msd` — the four-cart mass-spring-damper simulator of the paper
  (:class:`MassSpringDamper`), :func:`make_datasets` (the paper's splits, deterministic from a
  seed) and :func:`load_paper_msd` (the authors' stored files);
* :mod:`~rrnn_convex.datasets.benchmarks` — cascaded tanks, coupled electric drives, EMPS and
  Silverbox with their standard splits (local files, or the ``nonlinear_benchmarks`` package);
* :mod:`~rrnn_convex.datasets.folders` — where data folders are: passed in, else ``$RRNN_DATA``
  (the folder that holds ``msd_dataset/`` and ``sysid/``).
"""
from .core import SequenceData, read_csv, read_npz
from .msd import MassSpringDamper, MSDSplits, load_paper_msd, make_datasets, random_hold_input, spring_force
from .benchmarks import (Benchmark, cascaded_tanks, coupled_electric_drives, emps, load_benchmark,
                         silverbox, BENCHMARKS)
from .folders import DATA_ENV, data_folder, require_data_folder

__all__ = ["SequenceData", "read_csv", "read_npz", "MassSpringDamper", "MSDSplits", "load_paper_msd",
           "make_datasets", "random_hold_input", "spring_force", "Benchmark", "cascaded_tanks",
           "coupled_electric_drives", "emps", "silverbox", "load_benchmark", "BENCHMARKS", "DATA_ENV", "data_folder",
           "require_data_folder"]
