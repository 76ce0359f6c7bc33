"""MNIST (and any other data set in the same idx layout), loaded and split as the book does.

This is the public entry; each step has its own module:

* :mod:`nndl.data.locate` -- where the files are (:func:`find_mnist`: an
  explicit directory, then ``$NNDL_DATA``, then ``./data/mnist``, then the
  user's cache directory);
* :mod:`nndl.data.download` -- fetching the official files into the cache
  (:func:`download_mnist`: the mirrors in order, each file within a time
  limit and checked by SHA-256 before it takes its name);
* :mod:`nndl.data.verify` -- that each file is the official one (SHA-256);
* :mod:`nndl.data.splits` -- the checks on the arrays and the book's split
  (training 50,000, validation 10,000, test 10,000).

:func:`load_mnist` does all four. :func:`load_idx_dataset` loads any data set
with the same four-file layout, such as Fashion-MNIST, without checksum
verification. The names other code imports from here (``FILES``,
``Split``, ``MnistData``, the errors, ...) are re-exported.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nndl.data import locate
from nndl.data.download import DEFAULT_MIRRORS, DOWNLOAD_TIME_LIMIT, SOCKET_TIMEOUT, download_mnist
from nndl.data.idx import parse_idx, read_idx
from nndl.data.locate import ENV_VAR, FILES, cache_dir, candidate_names, find_mnist, locate_file, missing_reason
from nndl.data.splits import (
    TEST_SIZE,
    TRAINING_SIZE,
    VALIDATION_SIZE,
    MnistData,
    Split,
    check_layout,
    check_mnist,
    check_validation_size,
    make_splits,
)
from nndl.data.verify import GZ_SHA256, RAW_SHA256, verified_content
from nndl.errors import ChecksumError, ConfigError, DataError, DataNotFoundError, DownloadError

#: The old name of ``nndl.errors.DataError``, kept for callers that import it from here.
DatasetError = DataError

__all__ = [
    "FILES",
    "GZ_SHA256",
    "RAW_SHA256",
    "DEFAULT_MIRRORS",
    "ENV_VAR",
    "TRAINING_SIZE",
    "VALIDATION_SIZE",
    "TEST_SIZE",
    "DOWNLOAD_TIME_LIMIT",
    "SOCKET_TIMEOUT",
    "Split",
    "MnistData",
    "ChecksumError",
    "ConfigError",
    "DataError",
    "DataNotFoundError",
    "DatasetError",
    "DownloadError",
    "cache_dir",
    "find_mnist",
    "download_mnist",
    "load_mnist",
    "load_idx_dataset",
]


def _read_four(directory: Path, verify: bool) -> dict[str, np.ndarray]:
    """Read the four idx files in ``directory``; role -> array (read-only, native dtype)."""
    arrays = {}
    for role, name in FILES.items():
        path = locate_file(directory, name)
        if path is None:
            raise DataNotFoundError(
                f"{directory} has no {name} (looked for {', '.join(candidate_names(name))})",
                [(str(directory), f"missing {name}(.gz)")],
            )
        arrays[role] = parse_idx(verified_content(path, name), path) if verify else read_idx(path)
    return arrays


def load_mnist(
    path: str | os.PathLike | None = None, *, download: bool = True, progress: bool | None = None
) -> MnistData:
    """Load MNIST, split as in the book.

    The files are found with :func:`find_mnist`; if none are found and
    ``download`` is true (and no ``path`` was given) they are downloaded
    into :func:`~nndl.data.locate.cache_dir` first.  Every file is verified against the
    official SHA-256 (of the ``.gz`` or of the uncompressed content) and
    the shapes and labels are checked.

    Parameters
    ----------
    path : str or path-like, optional
        Directory holding the four MNIST files.  Default: search.
    download : bool
        Download the files if they are not found.
    progress : bool, optional
        Show a download progress bar on stderr.  Default: when stderr is a
        terminal.

    Returns
    -------
    MnistData
        ``training`` (50,000), ``validation`` (10,000) and ``test``
        (10,000) splits; images float32 in [0, 1] of shape (n, 784), labels
        int64 in 0..9 of shape (n,).  About 220 MB in all.

    Raises
    ------
    DataNotFoundError
        If the files are not found and may not (or, for an explicit
        ``path``, will not) be downloaded.
    DownloadError
        If the files are not found and downloading them failed.
    ChecksumError
        If a file does not match the official checksums.
    IdxError, DatasetError
        If a file is malformed.
    """
    try:
        directory = find_mnist(path)
    except DataNotFoundError as not_found:
        if path is not None or not download:
            raise
        try:
            directory = download_mnist(locate.cache_dir(), DEFAULT_MIRRORS, progress=progress)
        except DownloadError as failed:
            raise DownloadError(f"{not_found}; and downloading failed: {failed}") from None
    arrays = _read_four(directory, verify=True)
    check_mnist(arrays, directory)
    check_layout(arrays, directory, VALIDATION_SIZE)
    return make_splits(arrays, directory, VALIDATION_SIZE)


def load_idx_dataset(directory: str | os.PathLike, validation_size: int = 10_000) -> MnistData:
    """Load any data set stored in MNIST's four-file idx layout (e.g. Fashion-MNIST).

    The files must be named as MNIST's (see ``FILES``; ``.gz`` optional).
    No checksums are required; the structure is checked instead: images
    3-d uint8, labels 1-d non-negative integers, image and label counts
    agree, and no split but validation is empty.

    Parameters
    ----------
    directory : str or path-like
        Directory holding the four files.
    validation_size : int
        The last ``validation_size`` training images form the validation
        split (0 for none).

    Returns
    -------
    MnistData
        Splits with images float32 in [0, 1] of shape (n, rows * columns)
        and labels int64 of shape (n,).

    Raises
    ------
    ConfigError
        If ``validation_size`` is negative, not a whole number, or more than
        the number of training images.
    DataNotFoundError
        If a file is missing.
    IdxError, DatasetError
        If a file is malformed, the files do not fit together, or a split
        would be empty (``validation_size`` equal to the training count).
    """
    check_validation_size(validation_size)
    directory = Path(directory).expanduser()
    why = missing_reason(directory)
    if why is not None:
        places = [(str(directory), why)]
        raise DataNotFoundError(
            f"cannot load an idx data set from {directory}: it {why}", places
        )
    arrays = _read_four(directory, verify=False)
    check_layout(arrays, directory, validation_size)
    return make_splits(arrays, directory, validation_size)
