"""Checking output paths before the work that fills them.

Training can take an hour; a typo in ``--save`` or a read-only directory
must be found before it starts, not after. ``check_outputs`` looks at every
output path a command was given and refuses, naming the option and the
path, any that is a directory, cannot be created or written, is given twice,
or is one of the command's inputs.
"""

import os
import tempfile
from pathlib import Path

from nndl.errors import OutputError

__all__ = ["check_outputs", "rescue_path"]


def _nearest_existing(path):
    """The closest ancestor of ``path`` that exists (the directory that must be writable)."""
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def _can_write_in(directory):
    """True when a file can be created in ``directory`` (tried, not guessed: root, read-only mounts, ACLs)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def check_outputs(outputs, inputs=()):
    """Refuse output paths that cannot be written, before any work is done.

    Parameters
    ----------
    outputs : dict of str -> path or None
        Option name (as the user typed it, e.g. ``"--save"``) -> path.
        None entries are skipped.
    inputs : iterable of path or None
        Files the command reads; an output may not be one of them.

    Raises
    ------
    OutputError
        Naming the option and the path, and what is wrong.
    """
    input_paths = {_resolve(Path(p)): p for p in inputs if p}
    seen: dict[Path, str] = {}
    for option, given in outputs.items():
        if given is None:
            continue
        path = Path(given).expanduser()
        resolved = _resolve(path)                                    # through symlinks, as the write will go
        if str(given).strip() == "" or str(given).endswith(os.sep):
            raise OutputError(f"{option} {given!r} is not a file name")
        if resolved in seen:
            raise OutputError(f"{option} and {seen[resolved]} would both write {given}")
        seen[resolved] = option
        if resolved in input_paths:
            raise OutputError(f"{option} {given} is also an input of this command; writing it would replace "
                              "what is being read -- choose another file name")
        if resolved.is_dir():
            raise OutputError(f"{option} {given} is a directory; give a file name inside it")
        directory = resolved.parent
        existing = directory if directory.exists() else _nearest_existing(directory)
        if not existing.is_dir():
            raise OutputError(f"{option} {given}: {existing} is a file, not a directory")
        if not _can_write_in(existing):
            where = "its directory" if existing == directory else f"{existing} (to create {directory})"
            raise OutputError(f"{option} {given} cannot be written: no permission to create files in {where}")


def _resolve(path):
    """``path.resolve()``, or the absolute path where that fails (a symlink loop: the reader or writer
    refuses it later, in words)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError, ValueError):
        return Path(os.path.abspath(path))


def rescue_path(path):
    """Where to put an output that could not be written to ``path``: the temporary directory, same suffix."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f"nndl-rescued-{path.stem}-", suffix=path.suffix)
    os.close(fd)
    return Path(name)
