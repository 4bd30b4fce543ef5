"""Standard nonlinear system-identification benchmarks (nonlinearbenchmark.org) with their splits.

Splits and ``init`` lengths follow the conventions of the ``nonlinear_benchmarks`` loader (PyPI)
as recorded in the project's data notes; the error metric is the free-run simulation RMSE on the
test record with the first ``init`` samples excluded (:func:`rrnn_convex.metrics.rmse`).

=========================  =====================================  ==========================  ====
benchmark                  train                                  test(s)                     init
=========================  =====================================  ==========================  ====
cascaded tanks (Ts 4 s)    uEst -> yEst, 1024 samples             uVal -> yVal, 1024          50
coupled electric drives    first 400 samples of (u11->z11),       last 100 of each record     10
(Ts 0.02 s, DATAUNIF)      (u12->z12): batch 2                    (batch 2)
EMPS (1 kHz)               DATA_EMPS.mat: vir -> qm               DATA_EMPS_PULSES.mat        20
Silverbox (610.35 Hz)      V1 -> V2 [40650:105712]                multisine [105712:127400],  50
                                                                  arrow_full [100:40575],
                                                                  arrow_no_extrapolation
                                                                  [100:32100]
=========================  =====================================  ==========================  ====

Each loader reads local files from ``folder`` (the folder holding the files, or a parent with
the usual sub-folder such as ``cascaded_tanks/`` or ``CascadedTanksFiles/``). Without a folder
it asks the ``nonlinear_benchmarks`` package (if installed) where its cached download is and
parses those same files, so both routes give identical arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UnsupportedDependency
from .core import SequenceData, read_csv

__all__ = ["Benchmark", "cascaded_tanks", "coupled_electric_drives", "emps", "silverbox", "load_benchmark",
           "benchmark_key", "BENCHMARKS"]

INSTALL_HINT = ("pip install nonlinear_benchmarks (it downloads and caches the data), or download the files "
                "from nonlinearbenchmark.org and pass folder=...")


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's training set and its named test sets (each a :class:`SequenceData` with ``init``).

    Parameters
    ----------
    name : str
        The key in ``BENCHMARKS``.
    train : SequenceData
        The training set.
    tests : dict of str to SequenceData
        The test sets by name (``"test"`` when there is one).
    rmse_unit : str
        The unit in which results are usually reported.
    rmse_scale : float
        Multiply an RMSE in the data's unit by this to report it in ``rmse_unit``.
    """

    name: str
    train: SequenceData
    tests: dict = field(default_factory=dict)
    rmse_unit: str = ""  # unit in which results are usually reported
    rmse_scale: float = 1.0  # multiply an RMSE in the data's unit by this to report it in rmse_unit

    @property
    def test(self) -> SequenceData:
        """The test set when there is exactly one (else an error listing the names).

        Raises
        ------
        ValueError
            When there are several test sets (or none).
        """
        if len(self.tests) == 1:
            return next(iter(self.tests.values()))
        raise ValueError(f"{self.name} has {len(self.tests)} test sets: {', '.join(self.tests)}; "
                         f"use .tests[name]")


# --------------------------------------------------------------------- file lookup
def _find(folder, names, subdirs) -> Path:
    """First existing file among ``names`` (case-insensitive) in folder or folder/subdir."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: no such directory {str(folder)!r}")
    candidates = [folder] + [folder / s for s in subdirs]
    wanted = [n.lower() for n in names]
    for d in candidates:
        if not d.is_dir():
            continue
        present = {p.name.lower(): p for p in d.iterdir() if p.is_file()}
        for w in wanted:
            if w in present:
                return present[w]
    raise FileNotFoundError(f"folder: none of {names} found in {str(folder)!r} or its sub-folders "
                            f"{list(subdirs)}; {INSTALL_HINT}")


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat
    try:
        return loadmat(path)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable MATLAB file ({exc})") from None


def _vec(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path.name}: expected a variable {key!r}, found {found}")
    arr = np.asarray(mat[key], dtype=np.float64)
    if arr.ndim != 2 or 1 not in arr.shape:
        raise ValueError(f"{path.name}: expected {key!r} to be a vector, got shape {arr.shape}")
    return arr.reshape(-1)


def _delegate(name: str):
    """Ask nonlinear_benchmarks for the location of its cached files (downloading them if needed)."""
    try:
        import nonlinear_benchmarks as nb
    except ImportError:
        raise FileNotFoundError(f"{name}: no folder given and the nonlinear_benchmarks package is not "
                                f"installed; {INSTALL_HINT}") from None
    func = {"cascaded_tanks": "Cascaded_Tanks", "coupled_electric_drives": "CED", "emps": "EMPS",
            "silverbox": "Silverbox"}[name]
    if not hasattr(nb, func):
        raise UnsupportedDependency(f"{name}: this version of nonlinear_benchmarks has no {func}(); pass folder=...")
    try:
        locations = getattr(nb, func)(data_file_locations=True)
    except TypeError:
        raise UnsupportedDependency(f"{name}: this version of nonlinear_benchmarks does not report file "
                                    f"locations (data_file_locations=True); pass folder=... with the downloaded "
                                    f"files") from None
    if isinstance(locations, (str, Path)):
        locations = [locations]
    folders = [Path(p).parent for p in locations]
    return folders[0]


def _seq(u, y, ts, name, init=0, source=None, **meta):
    return SequenceData(u=np.asarray(u)[:, None], y=np.asarray(y)[:, None], ts=ts, name=name, init=init,
                        x0_known=False, meta={"source": str(source), **meta})


# --------------------------------------------------------------------- loaders
def cascaded_tanks(folder=None) -> Benchmark:
    """Cascaded tanks (Schoukens & Noel 2016): train (uEst -> yEst), test (uVal -> yVal), init 50, Ts 4 s.

    Reads ``dataBenchmark.mat`` (or ``dataBenchmark.csv``, whose trailing comma is tolerated).

    Parameters
    ----------
    folder : str or os.PathLike, optional
        The folder with the file, or a parent with one of the usual sub-folders
        (``cascaded_tanks``, ``CascadedTanksFiles``, ``Cascaded_Tanks``,
        ``Cascaded_Tanks/CascadedTanksFiles``). None: the ``nonlinear_benchmarks`` package's
        cached download.

    Returns
    -------
    Benchmark
        ``train`` and ``tests["test"]``, each one sequence (1, T, 1) with ``x0_known`` False;
        RMSE in V.

    Raises
    ------
    FileNotFoundError
        No such folder or file, or no folder and no ``nonlinear_benchmarks``.
    ValueError
        An unreadable file or a missing or malformed variable (column).
    rrnn_convex.errors.UnsupportedDependency
        A ``nonlinear_benchmarks`` that cannot report its file locations.
    """
    folder = _delegate("cascaded_tanks") if folder is None else folder
    subdirs = ("cascaded_tanks", "CascadedTanksFiles", "Cascaded_Tanks", "Cascaded_Tanks/CascadedTanksFiles")
    try:
        path = _find(folder, ["dataBenchmark.mat"], subdirs)
        mat = _loadmat(path)
        uEst, uVal, yEst, yVal = (_vec(mat, k, path) for k in ("uEst", "uVal", "yEst", "yVal"))
        ts = float(np.asarray(mat["Ts"]).reshape(-1)[0]) if "Ts" in mat else 4.0
    except FileNotFoundError:
        path = _find(folder, ["dataBenchmark.csv"], subdirs)
        est = read_csv(path, ["uEst"], ["yEst"])
        val = read_csv(path, ["uVal"], ["yVal"])
        uEst, yEst, uVal, yVal = est.u[0, :, 0], est.y[0, :, 0], val.u[0, :, 0], val.y[0, :, 0]
        ts = 4.0
    train = _seq(uEst, yEst, ts, "cascaded tanks train", source=path)
    test = _seq(uVal, yVal, ts, "cascaded tanks test", init=50, source=path)
    return Benchmark("cascaded_tanks", train, {"test": test}, rmse_unit="V", rmse_scale=1.0)


def coupled_electric_drives(folder=None) -> Benchmark:
    """Coupled electric drives (Wigren & Schoukens 2017), DATAUNIF: records (u11 -> z11), (u12 -> z12).

    Train: the first 400 samples of both records (batch 2); test: the last 100 of each (batch 2),
    init 10; Ts = 0.02 s. The speed sensor cannot see the sign of the velocity.

    Parameters
    ----------
    folder : str or os.PathLike, optional
        The folder with ``DATAUNIF.MAT`` (or ``DATAUNIF.csv``), or a parent with one of the
        sub-folders ``coupled_electric_drives``, ``CED``,
        ``CoupledElectricDrivesDataSetAndReferenceModels``. None: the ``nonlinear_benchmarks``
        package's cached download.

    Returns
    -------
    Benchmark
        ``train`` (2, 400, 1) and ``tests["test"]`` (2, T - 400, 1), ``x0_known`` False.

    Raises
    ------
    FileNotFoundError
        No such folder or file, or no folder and no ``nonlinear_benchmarks``.
    ValueError
        An unreadable file, a missing or malformed variable, records shorter than 401 samples
        (or too short for ``init`` = 10 in the test part), or records of different lengths.
    rrnn_convex.errors.UnsupportedDependency
        A ``nonlinear_benchmarks`` that cannot report its file locations.
    """
    folder = _delegate("coupled_electric_drives") if folder is None else folder
    subdirs = ("coupled_electric_drives", "CED", "CoupledElectricDrivesDataSetAndReferenceModels")
    try:
        path = _find(folder, ["DATAUNIF.MAT"], subdirs)
        mat = _loadmat(path)
        u11, u12, z11, z12 = (_vec(mat, k, path) for k in ("u11", "u12", "z11", "z12"))
    except FileNotFoundError:
        path = _find(folder, ["DATAUNIF.csv"], subdirs)
        a = read_csv(path, ["u11", "u12"], ["z11", "z12"])
        u11, u12, z11, z12 = a.u[0, :, 0], a.u[0, :, 1], a.y[0, :, 0], a.y[0, :, 1]
    if u11.shape[0] < 401:
        raise ValueError(f"{path.name}: expected at least 401 samples per record (400 to train on, the rest to "
                         f"test on; the benchmark's records have 500), got {u11.shape[0]}")
    u = np.stack([u11, u12])[:, :, None]
    y = np.stack([z11, z12])[:, :, None]
    meta = {"source": str(path), "records": ["u11 -> z11", "u12 -> z12"]}
    train = SequenceData(u=u[:, :400], y=y[:, :400], ts=0.02, name="CED train", x0_known=False, meta=meta)
    test = SequenceData(u=u[:, 400:], y=y[:, 400:], ts=0.02, name="CED test", x0_known=False, init=10,
                        meta=dict(meta))
    return Benchmark("coupled_electric_drives", train, {"test": test}, rmse_unit="ticks/s", rmse_scale=1.0)


def emps(folder=None) -> Benchmark:
    """Electro-mechanical positioning system (Janot et al. 2019): vir (V) -> qm (m), 1 kHz, closed loop.

    Train: ``DATA_EMPS.mat``; test: ``DATA_EMPS_PULSES.mat``, init 20. RMSE reported in mm
    (``rmse_scale`` = 1000).

    The sampling period is the mean step of the stored time vector ``t``.

    Parameters
    ----------
    folder : str or os.PathLike, optional
        The folder with both files, or a parent with a sub-folder ``emps`` or ``EMPS``. None:
        the ``nonlinear_benchmarks`` package's cached download.

    Returns
    -------
    Benchmark
        ``train`` and ``tests["test"]``, each one sequence (1, T, 1) with ``x0_known`` False.

    Raises
    ------
    FileNotFoundError
        No such folder or file, or no folder and no ``nonlinear_benchmarks``.
    ValueError
        An unreadable file or a missing or malformed variable (``t``, ``vir``, ``qm``).
    rrnn_convex.errors.UnsupportedDependency
        A ``nonlinear_benchmarks`` that cannot report its file locations.
    """
    folder = _delegate("emps") if folder is None else folder
    subdirs = ("emps", "EMPS")
    out = []
    for fname, label, init in (("DATA_EMPS.mat", "EMPS train", 0), ("DATA_EMPS_PULSES.mat", "EMPS test", 20)):
        path = _find(folder, [fname], subdirs)
        mat = _loadmat(path)
        t, vir, qm = (_vec(mat, k, path) for k in ("t", "vir", "qm"))
        ts = float((t[-1] - t[0]) / (t.shape[0] - 1))  # mean step (t is stored in single precision)
        out.append(_seq(vir, qm, ts, label, init=init, source=path))
    return Benchmark("emps", out[0], {"test": out[1]}, rmse_unit="mm", rmse_scale=1000.0)


SILVERBOX_FS = 610.35


def silverbox(folder=None) -> Benchmark:
    """Silverbox (Wigren & Schoukens 2013), ``SNLS80mV.mat``: V1 -> V2, fs = 610.35 Hz.

    Train [40650:105712] (the first 75 % of the multisine); tests ``multisine`` [105712:127400],
    ``arrow_full`` [100:40575], ``arrow_no_extrapolation`` [100:32100], init 50 each. RMSE in mV.

    Parameters
    ----------
    folder : str or os.PathLike, optional
        The folder with the file, or a parent with one of the sub-folders ``silverbox``,
        ``SilverboxFiles``, ``Silverbox``, ``Silverbox/SilverboxFiles``. None: the
        ``nonlinear_benchmarks`` package's cached download.

    Returns
    -------
    Benchmark
        ``train`` and the three ``tests``, each one sequence (1, T, 1) with ``x0_known`` False
        and ``meta["start"]``, the first sample's index in the record.

    Raises
    ------
    FileNotFoundError
        No such folder or file, or no folder and no ``nonlinear_benchmarks``.
    ValueError
        An unreadable file, a missing or malformed ``V1`` / ``V2``, or fewer than 127400
        samples.
    rrnn_convex.errors.UnsupportedDependency
        A ``nonlinear_benchmarks`` that cannot report its file locations.
    """
    folder = _delegate("silverbox") if folder is None else folder
    path = _find(folder, ["SNLS80mV.mat"],
                 ("silverbox", "SilverboxFiles", "Silverbox", "Silverbox/SilverboxFiles"))
    mat = _loadmat(path)
    u, y = _vec(mat, "V1", path), _vec(mat, "V2", path)
    ts = 1.0 / SILVERBOX_FS
    ms0, ms1 = 40650, 127400
    split = ms0 + int((ms1 - ms0) * 0.75)  # 105712, as in nonlinear_benchmarks
    if u.shape[0] < ms1:
        raise ValueError(f"{path.name}: expected 131072 samples, got {u.shape[0]}")
    train = _seq(u[ms0:split], y[ms0:split], ts, "Silverbox train (multisine)", source=path, start=ms0)
    tests = {}
    for key, (a, b) in {"multisine": (split, ms1), "arrow_full": (100, 40575),
                        "arrow_no_extrapolation": (100, 32100)}.items():
        tests[key] = _seq(u[a:b], y[a:b], ts, f"Silverbox test {key}", init=50, source=path, start=a)
    return Benchmark("silverbox", train, tests, rmse_unit="mV", rmse_scale=1000.0)


BENCHMARKS = {"cascaded_tanks": cascaded_tanks, "coupled_electric_drives": coupled_electric_drives,
              "emps": emps, "silverbox": silverbox}


def load_benchmark(name: str, folder=None) -> Benchmark:
    """Load a benchmark by name: ``cascaded_tanks``, ``coupled_electric_drives``, ``emps``, ``silverbox``.

    Parameters
    ----------
    name : str
        Case-insensitive; ``-`` and spaces count as ``_``; the aliases ``ced`` and ``tanks``
        are accepted.
    folder : str or os.PathLike, optional
        Passed to the loader.

    Returns
    -------
    Benchmark

    Raises
    ------
    ValueError
        An unknown name, or from the loader.
    FileNotFoundError
        From the loader.
    rrnn_convex.errors.UnsupportedDependency
        From the loader.
    """
    return BENCHMARKS[benchmark_key(name)](folder)


#: other names of benchmarks
ALIASES = {"ced": "coupled_electric_drives", "tanks": "cascaded_tanks"}


def benchmark_key(name: str) -> str:
    """The key of a benchmark in ``BENCHMARKS`` for a name as a user may write it.

    Parameters
    ----------
    name : str
        Case-insensitive; ``-`` and spaces count as ``_``; the aliases ``ced`` and ``tanks``
        are accepted.

    Returns
    -------
    str
        ``cascaded_tanks``, ``coupled_electric_drives``, ``emps`` or ``silverbox``.

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones).
    """
    key = str(name).lower().replace("-", "_").replace(" ", "_")
    key = ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f"name: unknown benchmark {name!r}; expected one of {sorted(BENCHMARKS)} "
                         f"(or {', '.join(sorted(ALIASES))})")
    return key
