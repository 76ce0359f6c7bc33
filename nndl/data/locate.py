"""Where the MNIST files are: their names, the places looked in, and why a place does not qualify.

:func:`find_mnist` looks in an explicit directory, then ``$NNDL_DATA``, then
``./data/mnist``, then the user's cache directory (:func:`cache_dir`), and
takes the first that holds all four files. Nothing is read here: a directory
qualifies by the names of its files alone, so that looking is cheap and the
error can list every place tried, and why each failed, in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from nndl.errors import DataNotFoundError

__all__ = ["FILES", "ENV_VAR", "cache_dir", "candidate_names", "locate_file", "missing_reason",
           "not_found_message", "find_mnist"]

#: The four files of the idx layout: role -> official MNIST name (without ``.gz``).
FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: Other spellings of the same files seen in the wild (e.g. on Kaggle).
_VARIANT_NAMES: dict[str, str] = {
    "train-images-idx3-ubyte": "train-images.idx3-ubyte",
    "train-labels-idx1-ubyte": "train-labels.idx1-ubyte",
    "t10k-images-idx3-ubyte": "t10k-images.idx3-ubyte",
    "t10k-labels-idx1-ubyte": "t10k-labels.idx1-ubyte",
}

#: Environment variable naming a directory that holds the MNIST files.
ENV_VAR = "NNDL_DATA"


def cache_dir() -> Path:
    """The per-user cache directory for MNIST: ``platformdirs.user_cache_dir("nndl") / "mnist"``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("nndl")) / "mnist"


def candidate_names(name: str) -> list[str]:
    """File names accepted for the official file ``name``, in order of preference."""
    variant = _VARIANT_NAMES.get(name, name)
    names = [name + ".gz", name, variant + ".gz", variant]
    return list(dict.fromkeys(names))


def locate_file(directory: Path, name: str) -> Path | None:
    """The first existing file in ``directory`` accepted for ``name``, or None."""
    for candidate in candidate_names(name):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def missing_reason(directory: Path) -> str | None:
    """Why ``directory`` does not hold the four files, or None if it does."""
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "is not a directory"
    missing = [f"{name}(.gz)" for name in FILES.values() if locate_file(directory, name) is None]
    if missing:
        return "is missing " + ", ".join(missing)
    return None


def not_found_message(places: list[tuple[str, str]]) -> str:
    """One line: every place looked and why it did not qualify, then how to fix it."""
    looked = "; ".join(f"{place}: {why}" for place, why in places)
    return (f"MNIST data not found (looked in {looked}). Fix: pass --data DIR (path=DIR in Python) naming a "
            f"directory with the four MNIST files ({', '.join(FILES.values())}, each optionally .gz), set "
            f"${ENV_VAR} to one, or run without --data (download=True in Python) to download them into {cache_dir()}")


def find_mnist(path: str | os.PathLike | None = None) -> Path:
    """Find a directory that holds the four MNIST files.

    A directory counts when it holds all four files (each may be gzipped or
    not; see ``FILES``).  The files are not read or verified here.  Places
    are tried in this order:

    1. ``path``, if given (and only it: if it does not hold the files the
       search stops there, since that is the place asked for);
    2. the directory in the environment variable ``NNDL_DATA``;
    3. ``data/mnist`` under the current working directory;
    4. the user cache directory, :func:`cache_dir`.

    Parameters
    ----------
    path : str or path-like, optional
        Directory to use.

    Returns
    -------
    pathlib.Path
        The directory found.

    Raises
    ------
    DataNotFoundError
        If no place holds the files; the message lists every place looked,
        why it did not qualify, and how to fix it.
    """
    places: list[tuple[str, str]] = []

    if path is not None:
        directory = Path(path).expanduser()
        why = missing_reason(directory)
        if why is None:
            return directory
        places.append((f"{directory} (the directory you gave)", why))
        raise DataNotFoundError(not_found_message(places), places)

    candidates: list[tuple[str, Path]] = []
    env_value = os.environ.get(ENV_VAR, "")
    if env_value:
        directory = Path(env_value).expanduser()
        candidates.append((f"{directory} (from ${ENV_VAR})", directory))
    else:
        places.append((f"${ENV_VAR}", "not set"))
    local = Path.cwd() / "data" / "mnist"
    candidates.append((f"{local} (data/mnist in the current directory)", local))
    cache = cache_dir()
    candidates.append((f"{cache} (user cache)", cache))

    for label, directory in candidates:
        why = missing_reason(directory)
        if why is None:
            return directory
        places.append((label, why))
    raise DataNotFoundError(not_found_message(places), places)
