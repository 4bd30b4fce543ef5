"""Input-output data: a small validated container and readers for CSV and NPZ files.

The package layout (docs/design.md section 5): inputs ``u`` shaped (batch, T, m), outputs ``y``
shaped (batch, T, p), float64, no NaN/inf. :class:`SequenceData` holds one data set (one or
several sequences of equal length) together with its sampling period, the number of samples
at the start of each sequence that metrics should skip (``init``) and, per sequence, whether
it starts from a known initial state. :func:`read_csv` and :func:`read_npz` are how users bring
their own data.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .._io import atomic_path, check_input_file
from .._validation import as_float_array, check_scalar

__all__ = ["SequenceData", "CsvTable", "read_csv", "read_npz"]

Column = Union[str, int]


def _as_sequences(value, name: str) -> np.ndarray:
    """float64 (batch, T, channels) from (T,), (T, c) or (batch, T, c); errors name ``name``."""
    arr = as_float_array(value, name)
    if arr.ndim == 1:
        arr = arr[None, :, None]
    elif arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise ValueError(f"{name}: expected shape (T,), (T, channels) or (batch, T, channels), "
                         f"got {np.shape(value)}")
    return np.ascontiguousarray(arr)


@dataclass(frozen=True, eq=False)
class SequenceData:
    """One input-output data set: ``u`` (batch, T, m) and ``y`` (batch, T, p), float64.

    ``u``/``y`` may also be given as (T,) or (T, channels) (one sequence); they are stored as
    (batch, T, channels). ``ts`` is the sampling period in seconds (None: unknown / discrete
    time). ``x0_known`` says, per sequence, whether the sequence starts from a known initial
    state (zero for a model; True for the paper's validation and test sets) or from an unknown
    one that a model must estimate or wash out (False for the training set); a single bool
    applies to every sequence. ``init`` is the number of samples at the start of each sequence
    excluded from error metrics (the benchmarks' state-initialisation window). ``x0_true``
    optionally holds the true initial states of simulated data, (batch, n). ``meta`` is free
    information (source file, input width, units...).

    Construction validates everything; errors name the argument and the expected and received
    shapes. Instances are immutable (the arrays are read-only); use :func:`dataclasses.replace`.

    Parameters
    ----------
    u : array_like, shape (batch, T, m), (T, m) or (T,)
        Inputs; at least one sequence of at least one sample.
    y : array_like, shape (batch, T, p), (T, p) or (T,)
        Outputs, with the same (batch, T) as ``u``.
    ts : float, optional
        Sampling period in seconds (> 0); None: unknown / discrete time.
    name : str
    x0_known : bool or array_like of bool, shape (batch,)
        Per sequence, whether it starts from a known initial state.
    init : int
        Samples at the start of each sequence excluded from error metrics, ``0 <= init < T``.
    x0_true : array_like, shape (batch, n) or (n,), optional
        The true initial states of simulated data (a 1-D array is one sequence's).
    meta : dict
        Free information.

    Raises
    ------
    ValueError
        A wrong number of dimensions, a (batch, T) mismatch, an empty ``u``, NaN or inf, a
        non-positive ``ts``, an ``x0_known`` or ``x0_true`` of the wrong shape, or ``init``
        outside ``[0, T)``.
    TypeError
        Non-numeric arrays, a ``name`` that is not a string, a non-bool ``x0_known``, a
        non-integer ``init`` or a ``meta`` that is not a dict.
    """

    u: np.ndarray
    y: np.ndarray
    ts: float | None = None
    name: str = ""
    x0_known: bool | np.ndarray = True
    init: int = 0
    x0_true: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        u = _as_sequences(self.u, "u")
        y = _as_sequences(self.y, "y")
        if u.shape[:2] != y.shape[:2]:
            raise ValueError(f"u and y: expected the same number of sequences and samples (batch, T), "
                             f"got u of shape {u.shape} and y of shape {y.shape}")
        batch, T = u.shape[:2]
        if batch < 1 or T < 1:
            raise ValueError(f"u: expected at least one sequence of at least one sample, got shape {u.shape}")
        for arr in (u, y):
            arr.setflags(write=False)
        set_("u", u)
        set_("y", y)
        if self.ts is not None:
            set_("ts", check_scalar(self.ts, "ts", low=0.0))
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected a string, got {type(self.name).__name__}")
        known = np.asarray(self.x0_known)
        if known.dtype != bool:
            raise TypeError(f"x0_known: expected a bool or a bool array of shape ({batch},), "
                            f"got {self.x0_known!r}")
        if known.shape == ():
            known = np.full(batch, bool(known))
        if known.shape != (batch,):
            raise ValueError(f"x0_known: expected a bool or shape ({batch},) (one flag per sequence), "
                             f"got shape {known.shape}")
        known = known.copy()
        known.setflags(write=False)
        set_("x0_known", known)
        if isinstance(self.init, bool) or not isinstance(self.init, (int, np.integer)):
            raise TypeError(f"init: expected an integer number of samples, got {self.init!r}")
        if not 0 <= self.init < T:
            raise ValueError(f"init: expected 0 <= init < T = {T}, got {self.init}")
        set_("init", int(self.init))
        if self.x0_true is not None:
            x0 = as_float_array(self.x0_true, "x0_true", ndim=(1, 2))
            if x0.ndim == 1:
                x0 = x0[None]
            if x0.shape[0] != batch:
                raise ValueError(f"x0_true: expected shape ({batch}, n) (one state per sequence), "
                                 f"got {x0.shape}")
            x0.setflags(write=False)
            set_("x0_true", x0)
        if not isinstance(self.meta, dict):
            raise TypeError(f"meta: expected a dict, got {type(self.meta).__name__}")

    # ----------------------------------------------------------------- dimensions
    @property
    def batch(self) -> int:
        """Number of sequences."""
        return self.u.shape[0]

    @property
    def T(self) -> int:
        """Samples per sequence."""
        return self.u.shape[1]

    @property
    def m(self) -> int:
        """Number of input channels."""
        return self.u.shape[2]

    @property
    def p(self) -> int:
        """Number of output channels."""
        return self.y.shape[2]

    def __len__(self) -> int:
        return self.batch

    def __repr__(self) -> str:
        ts = "discrete" if self.ts is None else f"{self.ts:g} s"
        return (f"SequenceData({self.name!r}, batch={self.batch}, T={self.T}, m={self.m}, p={self.p}, "
                f"ts={ts}, init={self.init}, "
                f"x0_known={self.x0_known.tolist() if self.batch <= 4 else '...'})")

    # ----------------------------------------------------------------- slicing
    def sequence(self, index: int) -> "SequenceData":
        """The ``index``-th sequence as a one-sequence data set.

        Parameters
        ----------
        index : int
            ``-batch <= index < batch``.

        Returns
        -------
        SequenceData
            With that sequence's ``x0_known`` and ``x0_true`` and a copy of ``meta``.

        Raises
        ------
        IndexError
            ``index`` out of range.
        """
        if not -self.batch <= index < self.batch:
            raise IndexError(f"index: expected -{self.batch} <= index < {self.batch}, got {index}")
        sl = slice(index, index + 1 if index != -1 else None)
        return replace(self, u=self.u[sl], y=self.y[sl], x0_known=self.x0_known[sl],
                       x0_true=None if self.x0_true is None else self.x0_true[sl], meta=dict(self.meta))

    def window(self, start: int = 0, stop: int | None = None, *, init: int = 0) -> "SequenceData":
        """Samples ``start:stop`` of every sequence (``x0_known``, ``x0_true`` kept only when start is 0).

        Parameters
        ----------
        start : int
        stop : int, optional
            Python slice bounds (negative values count from the end; None: to the end).
        init : int
            The window's ``init`` (not taken over from this data set).

        Returns
        -------
        SequenceData
            ``x0_known`` all False and no ``x0_true`` unless ``start`` is 0; a copy of ``meta``.

        Raises
        ------
        ValueError
            An empty window, or ``init`` not below the window's length.
        TypeError
            A non-integer ``init``.
        """
        start, stop, _ = slice(start, stop).indices(self.T)
        if stop <= start:
            raise ValueError(f"start, stop: empty window [{start}:{stop}] of a sequence of {self.T} samples")
        keep = start == 0
        return replace(self, u=self.u[:, start:stop], y=self.y[:, start:stop], init=init,
                       x0_known=self.x0_known if keep else False,
                       x0_true=self.x0_true if keep else None, meta=dict(self.meta))

    # ----------------------------------------------------------------- files
    def to_npz(self, path) -> Path:
        """Write to ``path`` (``.npz``) atomically; :func:`read_npz` reads it back unchanged.

        ``meta`` is stored as JSON (values JSON cannot hold are stored as their ``str``).

        Parameters
        ----------
        path : str or os.PathLike
            ``.npz`` is appended when the name does not end in it.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        payload = {"u": self.u, "y": self.y, "ts": np.array(np.nan if self.ts is None else self.ts),
                   "name": np.array(self.name), "x0_known": self.x0_known, "init": np.array(self.init),
                   "meta": np.array(json.dumps(self.meta, default=str)),
                   "kind": np.array("rrnn_convex.SequenceData")}
        if self.x0_true is not None:
            payload["x0_true"] = self.x0_true
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)
        return path


# --------------------------------------------------------------------- readers
def _column_list(spec, name: str) -> list:
    if isinstance(spec, (str, int, np.integer)) and not isinstance(spec, bool):
        return [spec]
    try:
        items = list(spec)
    except TypeError:
        raise TypeError(f"{name}: expected a column name, an index or a list of them, got {spec!r}") from None
    if not items:
        raise ValueError(f"{name}: expected at least one column, got an empty list")
    for it in items:
        if isinstance(it, bool) or not isinstance(it, (str, int, np.integer)):
            raise TypeError(f"{name}: expected column names (str) or indices (int), got {it!r}")
    return items


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, eq=False)
class CsvTable:
    """The non-blank rows of a CSV file as text, read once.

    Each row is ``(line, fields)``: the file's line number and the fields with surrounding
    whitespace and quotes stripped (blank rows are skipped). :meth:`sequence_data` turns selected
    columns into a :class:`SequenceData` (this is :func:`read_csv`), :meth:`labels` reads a text
    column, e.g. one that names the sequence of each row.

    Parameters
    ----------
    path : Path
        The file the rows come from (named in error messages).
    rows : tuple
        ``(line, fields)`` of every non-blank row, the header row included.
    """

    path: Path
    rows: tuple

    @classmethod
    def read(cls, path, delimiter: str = ",", role: str = "path") -> "CsvTable":
        """Read every row of a CSV file (no column is interpreted yet).

        Parameters
        ----------
        path : str or Path
            The CSV file (UTF-8, an optional byte-order mark).
        delimiter : str
            The field separator.
        role : str
            The argument named when the file is missing.

        Returns
        -------
        CsvTable
            The rows; none for an empty file.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            For a directory, a file that is not UTF-8 text, or malformed CSV (naming the line).
        """
        path = check_input_file(path, role)
        rows = []
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh, delimiter=delimiter, skipinitialspace=True, strict=True)
                for fields in reader:
                    if not fields or all(not f.strip() for f in fields):
                        continue  # blank line
                    rows.append((reader.line_num, [f.strip() for f in fields]))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a text CSV file ({exc})") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: malformed CSV near line {reader.line_num} ({exc})") from None
        return cls(path, tuple(rows))

    @property
    def first_row(self) -> list[str] | None:
        """The fields of the first non-blank row (the header, if the file has one); None for an
        empty file."""
        return list(self.rows[0][1]) if self.rows else None

    def has_header(self) -> bool:
        """Whether the first row holds column names: not all of its non-empty fields are numbers.

        Returns
        -------
        bool

        Raises
        ------
        IndexError
            For an empty file (no rows).
        """
        return not all(_is_number(f) for f in self.rows[0][1] if f != "")

    def labels(self, column: int, what: str = "label column") -> list[tuple[int, str]]:
        """``(line, text)`` of ``column`` in every row after the header row.

        Parameters
        ----------
        column : int
            0-based column index.
        what : str
            How the column is named in the error message.

        Returns
        -------
        list of (int, str)

        Raises
        ------
        ValueError
            If a row has no value in the column (naming its line).
        """
        out = []
        for line, fields in self.rows[1:]:
            label = fields[column] if column < len(fields) else ""
            if not label:
                raise ValueError(f"{self.path.name}: line {line} has no value in the {what}")
            out.append((line, label))
        return out

    def sequence_data(self, inputs: Column | Sequence[Column], outputs: Column | Sequence[Column],
                      ts: float | None = None, *, name: str | None = None, header: bool | None = None,
                      init: int = 0) -> SequenceData:
        """Selected columns as a one-sequence :class:`SequenceData` (see :func:`read_csv`).

        Parameters
        ----------
        inputs, outputs : str, int or a list of them
            Columns by header name or 0-based index.
        ts : float, optional
            Sampling period in seconds.
        name : str, optional
            The data set's name (default: the file's stem).
        header : bool, optional
            Whether the first row holds column names (None: :meth:`has_header`).
        init : int
            Samples at the start excluded from error metrics.

        Returns
        -------
        SequenceData
            With ``meta`` ``{"source", "inputs", "outputs"}`` (column names, or indices without
            a header).

        Raises
        ------
        ValueError
            For an empty file, a header without data, an unknown or ambiguous column (listing the
            available ones), or a selected value that is missing, not a number, NaN or infinite
            (naming the line and the column).
        TypeError
            For a column given as neither a name nor an index.
        """
        in_spec = _column_list(inputs, "inputs")
        out_spec = _column_list(outputs, "outputs")
        names, rows = self._names_and_data(header)
        columns = _ColumnNames(self.path.name, names, len(names) if names is not None else
                               max(len(r) for _, r in rows))
        in_idx = [columns.resolve(s, "inputs") for s in in_spec]
        out_idx = [columns.resolve(s, "outputs") for s in out_spec]
        data = self._numbers(rows, in_idx + out_idx, columns)
        meta = {"source": str(self.path), "inputs": [columns.key(i) for i in in_idx],
                "outputs": [columns.key(i) for i in out_idx]}
        return SequenceData(u=data[:, :len(in_idx)], y=data[:, len(in_idx):], ts=ts,
                            name=self.path.stem if name is None else name, init=init, meta=meta)

    def _names_and_data(self, header: bool | None) -> tuple[list[str] | None, tuple]:
        """(column names, or None without a header; the data rows)."""
        if not self.rows:
            raise ValueError(f"{self.path}: the file holds no data")
        if header is None:
            header = self.has_header()
        if not header:
            return None, self.rows
        names = list(self.rows[0][1])
        while names and names[-1] == "":
            names.pop()  # trailing comma
        if len(self.rows) == 1:
            raise ValueError(f"{self.path}: the file has a header but no data rows")
        return names, self.rows[1:]

    def _numbers(self, rows, cols: list[int], columns: "_ColumnNames") -> np.ndarray:
        """The selected columns of ``rows`` as a (rows, columns) float array, every value finite."""
        data = np.empty((len(rows), len(cols)))
        for r, (line, fields) in enumerate(rows):
            for j, c in enumerate(cols):
                data[r, j] = _number(fields, c, f"{self.path.name}: line {line} (data row {r})", columns.label(c))
        return data


@dataclass(frozen=True)
class _ColumnNames:
    """How the columns of one CSV file are named: by the header, or by index without one."""

    file: str
    names: list | None  # None: no header row
    count: int

    def available(self) -> str:
        if self.names is not None:
            return ", ".join(repr(n) for n in self.names)
        return f"indices 0..{self.count - 1} (no header)"

    def label(self, i: int) -> str:
        return repr(self.names[i]) if self.names is not None else f"index {i}"

    def key(self, i: int):
        """What ``meta`` records for column ``i``: its name, or its index without a header."""
        return self.names[i] if self.names is not None else i

    def resolve(self, spec, role: str) -> int:
        """The 0-based index of a column given by name (case-insensitive if unambiguous) or index."""
        if isinstance(spec, str):
            return self._by_name(spec, role)
        idx = int(spec)
        if not -self.count <= idx < self.count:
            raise ValueError(f"{role}: column index {idx} out of range for {self.file}, which has {self.count} "
                             f"columns ({self.available()})")
        return idx % self.count

    def _by_name(self, spec: str, role: str) -> int:
        names = self.names
        if names is None:
            raise ValueError(f"{role}: column {spec!r} named, but {self.file} has no header row; "
                             f"use 0-based indices 0..{self.count - 1}")
        if spec in names:
            if names.count(spec) > 1:
                raise ValueError(f"{role}: column name {spec!r} appears {names.count(spec)} times in "
                                 f"{self.file}; select it by index")
            return names.index(spec)
        folded = [i for i, n in enumerate(names) if n.lower() == spec.lower()]
        if len(folded) == 1:
            return folded[0]
        raise ValueError(f"{role}: unknown column {spec!r} in {self.file}; available columns: {self.available()}")


def _number(fields: list[str], c: int, where: str, label: str) -> float:
    """Field ``c`` of a row as a finite float; errors say ``where`` (file, line, row) and the column."""
    if c >= len(fields) or fields[c] == "":
        raise ValueError(f"{where} has no value in column {label}")
    text = fields[c]
    try:
        val = float(text)
    except ValueError:
        raise ValueError(f"{where}, column {label}: {text!r} is not a number") from None
    if not math.isfinite(val):
        raise ValueError(f"{where}, column {label}: {text!r} is NaN or infinite")
    return val


def read_csv(path, inputs: Column | Sequence[Column], outputs: Column | Sequence[Column],
             ts: float | None = None, *, name: str | None = None, delimiter: str = ",",
             header: bool | None = None, init: int = 0) -> SequenceData:
    """Read one input-output record from a CSV file into a one-sequence :class:`SequenceData`.

    ``inputs`` and ``outputs`` select columns by header name or by 0-based index (a single
    column or a list). ``header``: whether the first row holds column names (None: detected,
    a first row that is not all numbers is a header). Surrounding whitespace and quotes are
    stripped from names; empty trailing fields (a trailing comma) are ignored. Only the selected
    columns must be numeric. Errors: FileNotFoundError for a missing file; ValueError for an
    unknown column (listing the available ones), a malformed file, or a row whose selected
    value is missing, non-numeric, NaN or infinite (naming the line and the column).
    The file is read by :class:`CsvTable`, which the ``rrnn`` command uses too.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file (UTF-8, an optional byte-order mark).
    inputs, outputs : str, int or a list of them
        Columns by header name (case-insensitive when unambiguous) or 0-based index.
    ts : float, optional
        Sampling period in seconds.
    name : str, optional
        The data set's name (default: the file's stem).
    delimiter : str
        The field separator.
    header : bool, optional
        Whether the first row holds column names (None: detected).
    init : int
        Samples at the start excluded from error metrics.

    Returns
    -------
    SequenceData
        One sequence, batch 1; ``meta`` holds ``"source"``, ``"inputs"`` and ``"outputs"``
        (column names, or indices without a header).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A directory, a file that is not UTF-8 text or is malformed CSV, an empty file, a header
        without data, an unknown, ambiguous or out-of-range column, a bad value in a selected
        column, or an invalid ``ts`` or ``init``.
    TypeError
        A column given as neither a name nor an index, or a non-integer ``init``.
    """
    path = check_input_file(path, "path")
    in_spec = _column_list(inputs, "inputs")
    out_spec = _column_list(outputs, "outputs")
    return CsvTable.read(path, delimiter).sequence_data(in_spec, out_spec, ts, name=name, header=header, init=init)


def read_npz(path, inputs: str | Sequence[str] = "u", outputs: str | Sequence[str] = "y",
             ts: float | None = None, *, input_columns: Sequence[int] | None = None,
             output_columns: Sequence[int] | None = None, name: str | None = None,
             init: int | None = None) -> SequenceData:
    """Read input-output data from an ``.npz`` file (never unpickles objects).

    ``inputs``/``outputs`` name one or several arrays of the file, each shaped (T,), (T, c) or
    (batch, T, c); several are concatenated along the channel axis. ``input_columns`` /
    ``output_columns`` then select channels (0-based). A file written by
    :meth:`SequenceData.to_npz` is read back with its ``ts``, name, ``init``, ``x0_known``,
    ``x0_true`` and ``meta`` (explicit arguments win). Errors name the missing key (listing the
    available ones), the file and the shapes.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    inputs, outputs : str or sequence of str
        Array names; several are concatenated along the channel axis and must agree in
        (batch, T).
    ts : float, optional
        Sampling period in seconds (default: the stored one, if any).
    input_columns, output_columns : sequence of int, optional
        Channels to keep (0-based; negative indices count from the end).
    name : str, optional
        Default: the stored name, else the file's stem.
    init : int, optional
        Default: the stored ``init``, else 0.

    Returns
    -------
    SequenceData
        ``meta["source"]`` is the file unless the stored ``meta`` has one.
        ``x0_known`` and ``x0_true`` are taken from the file only when the arrays ``"u"`` and
        ``"y"`` are read without column selection; otherwise every ``x0_known`` is True.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A directory, a file that is not an ``.npz`` archive, an unknown array name (listing the
        available ones), an array that needs pickle, arrays of different (batch, T), column
        indices out of range or empty, or invalid data (see :class:`SequenceData`).
    TypeError
        ``inputs`` / ``outputs`` not a name or a list of names, or non-numeric data.
    """
    path = check_input_file(path, "path")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"path: {str(path)!r} is not a readable .npz file ({exc})") from None
    if not hasattr(npz, "files"):
        raise ValueError(f"path: {str(path)!r} holds a single array, not an .npz archive of named arrays")
    with npz:
        keys = list(npz.files)

        def gather(spec, role, columns):
            names = [spec] if isinstance(spec, str) else list(spec)
            if not names or not all(isinstance(n, str) for n in names):
                raise TypeError(f"{role}: expected an array name or a list of names, got {spec!r}")
            parts = []
            for n in names:
                if n not in keys:
                    raise ValueError(f"{role}: unknown array {n!r} in {path.name}; available arrays: "
                                     f"{', '.join(repr(k) for k in keys)}")
                try:
                    raw = npz[n]
                except ValueError as exc:  # object arrays need pickle
                    raise ValueError(f"{role}: array {n!r} in {path.name} cannot be read without pickle "
                                     f"({exc})") from None
                parts.append(_as_sequences(raw, f"{role} ({path.name}[{n!r}])"))
            shapes = {p.shape[:2] for p in parts}
            if len(shapes) > 1:
                raise ValueError(f"{role}: arrays {names} of {path.name} have different (batch, T): "
                                 f"{[p.shape for p in parts]}")
            arr = np.concatenate(parts, axis=2)
            if columns is not None:
                cols = [int(c) for c in columns]
                k = arr.shape[2]
                bad = [c for c in cols if not -k <= c < k]  # negative: from the end, as in read_csv
                if bad or not cols:
                    raise ValueError(f"{role[:-1]}_columns: expected indices in 0..{k - 1} (or -{k}..-1 from the "
                                     f"end), got {list(columns)}")
                arr = arr[:, :, cols]
            return arr, names

        u, u_names = gather(inputs, "inputs", input_columns)
        y, y_names = gather(outputs, "outputs", output_columns)
        stored = {}
        if "kind" in keys and str(npz["kind"]) == "rrnn_convex.SequenceData":
            stored_ts = float(npz["ts"])
            stored = {"ts": None if math.isnan(stored_ts) else stored_ts, "name": str(npz["name"]),
                      "init": int(npz["init"]), "meta": json.loads(str(npz["meta"]))}
            if u_names == ["u"] and y_names == ["y"] and input_columns is None and output_columns is None:
                stored["x0_known"] = np.asarray(npz["x0_known"], dtype=bool)
                if "x0_true" in keys:
                    stored["x0_true"] = npz["x0_true"]
    meta = dict(stored.get("meta", {}))
    meta.setdefault("source", str(path))
    return SequenceData(u=u, y=y, ts=ts if ts is not None else stored.get("ts"),
                        name=name if name is not None else stored.get("name", path.stem),
                        init=init if init is not None else stored.get("init", 0),
                        x0_known=stored.get("x0_known", True), x0_true=stored.get("x0_true"), meta=meta)
