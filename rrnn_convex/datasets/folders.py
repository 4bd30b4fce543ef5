"""Where data files are: a folder passed in, else the environment variable ``RRNN_DATA``.

``RRNN_DATA`` names the folder that holds the data sets, one sub-folder each: ``msd_dataset/``
(the authors' mass-spring-damper files, :func:`~rrnn_convex.datasets.load_paper_msd`) and
``sysid/`` (the measured benchmarks, :mod:`~rrnn_convex.datasets.benchmarks`). The package never
looks for data relative to where it is installed: a checkout's ``../shared/data`` is found only
when it is passed in or named by ``RRNN_DATA``.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "data_folder", "require_data_folder"]

#: the environment variable naming the folder that holds msd_dataset/ and sysid/
DATA_ENV = "RRNN_DATA"


def _from_environment(name: str) -> Path | None:
    """``$RRNN_DATA/<name>``, or None when RRNN_DATA is unset or empty."""
    root = os.environ.get(DATA_ENV)
    return Path(root) / name if root else None


def data_folder(name: str, folder=None) -> Path | None:
    """The folder of the data set ``name``: ``folder`` when given, else ``$RRNN_DATA/<name>``.

    Nothing is checked on disk: the caller decides whether a missing folder is an error
    (:func:`require_data_folder`) or a reason to fall back.

    Parameters
    ----------
    name : str
        The data set's sub-folder of ``RRNN_DATA``: ``"msd_dataset"`` or ``"sysid"``.
    folder : str or os.PathLike, optional
        The data set's folder itself; wins over the environment.

    Returns
    -------
    pathlib.Path or None
        The folder, or None when ``folder`` is not given and ``RRNN_DATA`` is unset.
    """
    if folder is not None:
        return Path(folder)
    return _from_environment(name)


def require_data_folder(name: str, folder=None, *, argument: str = "folder") -> Path:
    """Like :func:`data_folder`, for a folder that is needed: it must be given and exist.

    Parameters
    ----------
    name : str
        The data set's sub-folder of ``RRNN_DATA``.
    folder : str or os.PathLike, optional
        The data set's folder itself; wins over the environment.
    argument : str
        The caller's name for ``folder``, used in the error messages.

    Returns
    -------
    pathlib.Path
        The folder, an existing directory.

    Raises
    ------
    FileNotFoundError
        If neither ``folder`` nor ``RRNN_DATA`` is given, or the folder they name is not a
        directory; the message names the argument or the variable, what was expected and what
        was received.
    """
    path = data_folder(name, folder)
    if path is None:
        raise FileNotFoundError(f"{argument}: no {name} folder given and {DATA_ENV} is not set: pass "
                                f"{argument}=... (the {name} folder) or set {DATA_ENV} to the folder that "
                                f"holds {name}/")
    if not path.is_dir():
        if folder is not None:
            raise FileNotFoundError(f"{argument}: expected the {name} folder (a directory), "
                                    f"got {str(folder)!r}")
        raise FileNotFoundError(f"{DATA_ENV}: expected the folder that holds {name}/, got "
                                f"{os.environ[DATA_ENV]!r} ({str(path)!r} is not a directory)")
    return path
