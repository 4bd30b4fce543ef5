"""File handling: atomic writes (a file the package writes is either the old one or the complete
new one), strict JSON, and the checks that keep an output from destroying an input."""
from __future__ import annotations

import json
import math
import os
import secrets
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path in the destination folder; on success move it over ``path``.

    The temporary file is fsynced and renamed with :func:`os.replace`, which is atomic on
    POSIX and Windows, so a crash leaves either the previous file or the complete new one.
    A symlink ``path`` is written through: its target is replaced and the link stays. The file
    keeps the permission bits of the file it replaces; a new file gets the usual ones
    (0666 less the umask), as ``open(path, "w")`` would give it.

    Parameters
    ----------
    path : str or os.PathLike
        The destination (its folder is created if needed).
    suffix : str
        Appended to the temporary name (some writers choose the format by suffix).

    Yields
    ------
    pathlib.Path
        The temporary file to write; it is removed if the block raises.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # through symlinks, resolved from the link's own folder
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = _new_file(folder, f".{target.name}.", ".tmp" + suffix)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create a new empty file with a random name in ``folder``, mode 0666 less the umask."""
    for _ in range(100):
        name = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return name
    raise FileExistsError(f"could not create a temporary file in {str(folder)!r}")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`).

    Parameters
    ----------
    path : str or os.PathLike
    text : str
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_safe(obj):
    """NaN/inf -> None, numpy scalars -> Python numbers, recursively (JSON has no NaN).

    Parameters
    ----------
    obj : object
        Dicts (keys become strings), lists, tuples, numbers and numpy scalars.

    Returns
    -------
    object
        A value ``json.dumps`` accepts without NaN or inf.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, TypeError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------- strict JSON
def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    for i, k in enumerate(keys):
        if k in keys[:i]:
            raise ValueError(f"duplicate key {k!r} in a JSON object (which value is meant?)")
    return dict(pairs)


def strict_json(text: str):
    """``json.loads`` that refuses duplicate keys in an object.

    Parameters
    ----------
    text : str

    Returns
    -------
    object

    Raises
    ------
    ValueError
        A duplicate key (json.JSONDecodeError, itself a ValueError, for text that is not JSON).
    """
    return json.loads(text, object_pairs_hook=_unique_keys)


def reject_booleans(value, name: str) -> None:
    """Refuse true/false where JSON should hold numbers: Python and numpy would read them as 1, 0.

    Parameters
    ----------
    value : object
        A number or nested lists of numbers from JSON.
    name : str
        The name used in the error message.

    Raises
    ------
    ValueError
        ``value`` holds a boolean.
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bool):
            raise ValueError(f"{name}: holds true/false where numbers are expected")
        if isinstance(v, (list, tuple)):
            stack.extend(v)


# ---------------------------------------------------------------------- inputs and outputs
def check_input_file(path, role: str) -> Path:
    """``path`` as a Path, if it is an existing file.

    Parameters
    ----------
    path : str or os.PathLike
    role : str
        What the file is for (e.g. "data"), named in the error.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        ``path`` is a directory.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{role}: {str(p)!r} is a directory, not a file")
    if not p.is_file():
        raise FileNotFoundError(f"{role}: no such file {str(p)!r}")
    return p


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file: after resolving symlinks, or as hard links.

    Parameters
    ----------
    a, b : str or os.PathLike

    Returns
    -------
    bool
        False when one of them does not exist (and they do not resolve to the same path).
    """
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_outputs(inputs: dict, outputs: dict, *, may_equal: tuple = ()) -> None:
    """Refuse outputs that would destroy an input or each other, or cannot be written.

    ``inputs`` / ``outputs`` map a label (an option such as ``"--out"``, or a description) to a
    path or None (unused). Raises ValueError naming both paths when an output is the same file
    as an input (symlinks and hard links included) or as another output, except the
    (output label, input label) pairs of ``may_equal`` (e.g. a checkpoint that resumes and is
    rewritten); ValueError when an output is a directory, or its folder can neither be written
    nor created. Meant to run before any long work.

    Parameters
    ----------
    inputs, outputs : dict
        Label -> path or None.
    may_equal : tuple of tuple
        (output label, input label) pairs allowed to be the same file.

    Raises
    ------
    ValueError
        As described above.
    """
    ins = {k: v for k, v in inputs.items() if v is not None}
    outs = {k: v for k, v in outputs.items() if v is not None}
    labels = list(outs)
    for i, label in enumerate(labels):
        out = outs[label]
        others = [(f"the {k}", v) for k, v in ins.items() if (label, k) not in may_equal]
        others += [(k, outs[k]) for k in labels[:i]]
        for what, other in others:
            if same_file(out, other):
                raise ValueError(f"{label}: {str(out)!r} is the same file as {what} {str(other)!r}; writing it "
                                 f"would destroy that file: choose another path")
        check_writable(out, label)


def check_writable(path, label: str) -> None:
    """Check that a file can be written at ``path``. Writes and removes a probe file.

    Parameters
    ----------
    path : str or os.PathLike
    label : str
        Named in the error message (e.g. ``"--out"``).

    Raises
    ------
    ValueError
        ``path`` is a directory, or its folder (or the nearest existing folder above it) does
        not accept a new file.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{label}: {str(p)!r} is a directory; expected a file name")
    folder = Path(os.path.realpath(p)).parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{label}: cannot write {str(p)!r}: {str(existing)!r} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".rrnn-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        made = "" if folder.exists() else " or created"
        raise ValueError(f"{label}: cannot write {str(p)!r}: the folder {str(p.parent)!r} cannot be written{made} "
                         f"({exc.strerror or type(exc).__name__})") from None
