"""The MNIST data set (and any other data set in the same idx layout).

The splits follow the book:

* training: the first 50,000 of the 60,000 official training images;
* validation: the last 10,000 official training images;
* test: the 10,000 official test images.

Images are float32 in [0, 1], one flattened 28x28 image per row, shape
(n, 784); labels are int64 digits 0..9, shape (n,).

Where the files come from: :func:`find_mnist` looks in an explicit
directory, then ``$NNDL_DATA``, then ``./data/mnist``, then the user's cache
directory; :func:`download_mnist` fetches the official files into the cache
(trying the mirrors in order; see :mod:`nndl.data.download` for how one file is fetched,
within a time limit and checked by SHA-256 before it takes its name);
:func:`load_mnist` does both and verifies the files by SHA-256.
:func:`load_idx_dataset` loads any data set with the same four-file layout,
such as Fashion-MNIST, without checksum verification.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nndl.data.download import download_file, on_terminal
from nndl.data.idx import GZIP_MAGIC, IdxError, gunzip_if_needed, parse_idx, read_file_bytes, read_idx
from nndl.errors import ChecksumError, ConfigError, DataError, DataNotFoundError, DownloadError, InputError

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

#: SHA-256 of the official gzip files, keyed by the file name as downloaded.
GZ_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: SHA-256 of the decompressed content of the official files, keyed by the name without ``.gz``.
RAW_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Public mirrors of the official gzip files, tried in order.  The files are
#: verified by SHA-256, so a plain-http mirror is safe to use.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Environment variable naming a directory that holds the MNIST files.
ENV_VAR = "NNDL_DATA"

TRAINING_SIZE = 50_000
VALIDATION_SIZE = 10_000
TEST_SIZE = 10_000
_IMAGE_SHAPE = (28, 28)

#: The size of each official file's uncompressed content: a 16-byte header and 28x28 images, or an
#: 8-byte header and one byte per label. No file larger than this can be (a copy of) the official one.
_OFFICIAL_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 16 + (TRAINING_SIZE + VALIDATION_SIZE) * 28 * 28,
    "train-labels-idx1-ubyte": 8 + TRAINING_SIZE + VALIDATION_SIZE,
    "t10k-images-idx3-ubyte": 16 + TEST_SIZE * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + TEST_SIZE,
}

#: Seconds one file may take from one mirror in all (connecting, waiting, transferring); MNIST's
#: largest file is 9.9 MB, about a minute and a half at 100 kB/s.
DOWNLOAD_TIME_LIMIT = 300.0

#: Seconds to wait for a connection, or for the next bytes, before giving up on a mirror.
SOCKET_TIMEOUT = 30.0



@dataclass(frozen=True, eq=False)
class Split:
    """One part of a data set: images and their labels.

    Parameters
    ----------
    images : numpy.ndarray
        float32, shape (n, 784) for MNIST: one flattened image per row,
        pixel values in [0, 1].
    labels : numpy.ndarray
        int64, shape (n,): the class of each image.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if self.images.ndim != 2 or self.labels.ndim != 1:
            raise InputError(
                f"Split needs images of shape (n, d) and labels of shape (n,), "
                f"got {self.images.shape} and {self.labels.shape}"
            )
        if len(self.images) != len(self.labels):
            raise InputError(f"Split has {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class MnistData:
    """The three splits of a data set, and the directory they were loaded from.

    Iterating gives ``training, validation, test`` in that order, so
    ``training, validation, test = load_mnist()`` works.

    Notes
    -----
    ``training.images`` and ``validation.images`` are views on one float32
    array holding all official training images; they do not overlap, but
    they share memory, so changing one in place changes that array.
    """

    training: Split
    validation: Split
    test: Split
    source: Path

    def __iter__(self) -> Iterator[Split]:
        return iter((self.training, self.validation, self.test))


# ---------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """The per-user cache directory for MNIST: ``platformdirs.user_cache_dir("nndl") / "mnist"``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("nndl")) / "mnist"


def _candidate_names(name: str) -> list[str]:
    """File names accepted for the official file ``name``, in order of preference."""
    variant = _VARIANT_NAMES.get(name, name)
    names = [name + ".gz", name, variant + ".gz", variant]
    return list(dict.fromkeys(names))


def _locate(directory: Path, name: str) -> Path | None:
    """The first existing file in ``directory`` accepted for ``name``, or None."""
    for candidate in _candidate_names(name):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def _why_not(directory: Path) -> str | None:
    """Why ``directory`` does not hold the four files, or None if it does."""
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "is not a directory"
    missing = [f"{name}(.gz)" for name in FILES.values() if _locate(directory, name) is None]
    if missing:
        return "is missing " + ", ".join(missing)
    return None


def _not_found_message(places: list[tuple[str, str]]) -> str:
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
        why = _why_not(directory)
        if why is None:
            return directory
        places.append((f"{directory} (the directory you gave)", why))
        raise DataNotFoundError(_not_found_message(places), places)

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
        why = _why_not(directory)
        if why is None:
            return directory
        places.append((label, why))
    raise DataNotFoundError(_not_found_message(places), places)


def download_mnist(
    directory: str | os.PathLike | None = None,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    checksums: Mapping[str, str] | None = None,
    progress: bool | None = None,
    *,
    timeout: float = SOCKET_TIMEOUT,
    time_limit: float = DOWNLOAD_TIME_LIMIT,
) -> Path:
    """Download the four official MNIST ``.gz`` files.

    For each file, the mirrors are tried in order (the one that worked goes
    first for the next file). A line on stderr says which file is being
    fetched from where, and a progress bar follows it on a terminal. Each
    file is written through nndl's atomic writer and hashed as it arrives;
    only when its SHA-256 matches is it renamed into place, so a failed or
    corrupted download never leaves a file under the official name. Files
    already present with the right checksum are not downloaded again.

    Parameters
    ----------
    directory : str or path-like, optional
        Where to put the files (created if needed).  Default :func:`cache_dir`.
    mirrors : sequence of str
        Base URLs, tried in order for each file; the file name is appended.
    checksums : mapping of str to str, optional
        Expected SHA-256 (hex) of each file, keyed by file name
        (e.g. ``"train-images-idx3-ubyte.gz"``).  Default ``GZ_SHA256``.
    progress : bool, optional
        Show a progress bar on stderr.  Default: when stderr is a terminal.
    timeout : float
        Seconds to wait for a connection, or for the next bytes, before
        giving up on a mirror.
    time_limit : float
        Seconds one file may take from one mirror in all, however the
        server behaves, before giving up on that mirror.

    Returns
    -------
    pathlib.Path
        The directory holding the four files.

    Raises
    ------
    ConfigError
        If ``checksums`` lacks one of the files.
    DownloadError
        If some file could not be fetched with the right checksum from any
        mirror; the message names every URL tried and why it failed.
    OutputError
        If the files cannot be written into ``directory``.
    """
    import pooch

    directory = cache_dir() if directory is None else Path(directory).expanduser()
    checksums = GZ_SHA256 if checksums is None else checksums
    progress = on_terminal() if progress is None else progress
    missing = [name + ".gz" for name in FILES.values() if name + ".gz" not in checksums]
    if missing:
        raise ConfigError(f"no checksum given for {', '.join(missing)}; checksums has {sorted(checksums)}")
    mirrors = list(mirrors)

    for name in FILES.values():
        filename = name + ".gz"
        expected = checksums[filename].lower()
        destination = directory / filename
        if destination.is_file() and pooch.file_hash(str(destination)) == expected:
            continue
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                download_file(url, destination, expected, timeout=timeout, time_limit=time_limit, progress=progress)
            except DownloadError as exc:
                failures.append(f"{url}: {exc}")
                continue
            mirrors.remove(mirror)                   # the mirror that worked goes first for the next files
            mirrors.insert(0, mirror)
            break
        else:
            tried = "; ".join(failures) if failures else "no mirrors were given"
            raise DownloadError(
                f"could not download {filename} into {directory} (tried {tried}). Check the internet "
                f"connection, or download the four MNIST files yourself and pass their directory with "
                f"--data DIR or ${ENV_VAR}"
            )
    return directory


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _verified_content(path: Path, name: str) -> bytes | bytearray:
    """The uncompressed content of ``path``, checked to be the official MNIST file ``name``.

    The file passes if it is the official ``.gz`` (by its SHA-256) or if its
    uncompressed content is the official content (an unzipped or re-zipped
    copy). Neither can be larger than the official content, so a larger
    file is refused unread, and a gzip stream is decompressed no further
    than that size.

    Raises
    ------
    ChecksumError
        On a mismatch, with both expected checksums and what was found.
    """
    official_size = _OFFICIAL_SIZES[name]
    size = path.stat().st_size
    if size > official_size:
        raise _mismatch(path, name, f"a file of {size:,} bytes, more than the official {official_size:,}")
    raw = read_file_bytes(path)
    is_gzip = raw[:2] == GZIP_MAGIC
    file_sha = hashlib.sha256(raw).hexdigest()
    if is_gzip and file_sha == GZ_SHA256.get(name + ".gz"):
        return gunzip_if_needed(raw, path)

    content_sha = None
    problem = ""
    content = raw
    if is_gzip:
        try:
            content = gunzip_if_needed(raw, path, max_bytes=official_size)
            content_sha = hashlib.sha256(content).hexdigest()
        except IdxError as exc:
            problem = f" Also, it cannot be read: {exc}."
    else:
        content_sha = file_sha
    if content_sha is not None and content_sha == RAW_SHA256.get(name):
        return content
    got = file_sha if content_sha in (None, file_sha) else f"{file_sha} (uncompressed content: {content_sha})"
    raise _mismatch(path, name, got, problem)


def _mismatch(path: Path, name: str, got: str, problem: str = "") -> ChecksumError:
    """The error for a file named like the official ``name`` that is not it."""
    return ChecksumError(
        f"{path} is named like the MNIST file {name} but its checksum does not match "
        f"(expected SHA-256 {GZ_SHA256.get(name + '.gz')} for the .gz file or {RAW_SHA256.get(name)} for its "
        f"uncompressed content, got {got}).{problem} It may be corrupt (delete it and download it "
        "again) or it may be a different dataset. To load a different dataset in "
        "the same idx layout (such as Fashion-MNIST), use "
        "nndl.data.mnist.load_idx_dataset(directory, validation_size=...)."
    )


def _read_four(directory: Path, verify: bool) -> dict[str, np.ndarray]:
    """Read the four idx files in ``directory``; role -> array (read-only, native dtype)."""
    arrays = {}
    for role, name in FILES.items():
        path = _locate(directory, name)
        if path is None:
            raise DataNotFoundError(
                f"{directory} has no {name} (looked for {', '.join(_candidate_names(name))})",
                [(str(directory), f"missing {name}(.gz)")],
            )
        arrays[role] = parse_idx(_verified_content(path, name), path) if verify else read_idx(path)
    return arrays


def _check_layout(arrays: dict[str, np.ndarray], directory: Path, validation_size: int) -> None:
    """Structural checks shared by every idx data set."""
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DatasetError(
                f"{part} images in {directory} should be a 3-d uint8 array (n, rows, columns), "
                f"got {images.ndim}-d {images.dtype} of shape {images.shape}"
            )
        if labels.ndim != 1:
            raise DatasetError(
                f"{part} labels in {directory} should be 1-d, got shape {labels.shape}"
            )
        if labels.dtype.kind not in "iu":
            raise DatasetError(f"{part} labels in {directory} should be integers, got {labels.dtype}")
        if len(images) != len(labels):
            raise DatasetError(
                f"{directory} has {len(images)} {part} images but {len(labels)} {part} labels"
            )
        if len(labels) and labels.min() < 0:
            raise DatasetError(f"{part} labels in {directory} include negative values ({labels.min()})")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError(
            f"training images in {directory} are {arrays['train_images'].shape[1:]} but test "
            f"images are {arrays['test_images'].shape[1:]}"
        )
    if 0 in arrays["train_images"].shape[1:]:
        raise DatasetError(f"images in {directory} have no pixels (shape {arrays['train_images'].shape[1:]})")
    n_train, n_test = len(arrays["train_labels"]), len(arrays["test_labels"])
    if n_train == 0 or n_test == 0:
        raise DatasetError(f"{directory} has {n_train} training and {n_test} test images; both splits need some")
    if validation_size > n_train:
        raise ConfigError(
            f"validation_size={validation_size} is more than the {n_train} training images in {directory}"
        )
    if validation_size == n_train:
        raise DatasetError(
            f"validation_size={validation_size} would leave the training split empty: {directory} has "
            f"only {n_train} training images; use a smaller validation_size"
        )


def _check_validation_size(validation_size) -> None:
    """Refuse a validation size that no data set could satisfy (before any file is read)."""
    if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)):
        raise ConfigError(f"validation_size must be a whole number, got {validation_size!r}")
    if validation_size < 0:
        raise ConfigError(f"validation_size must be at least 0, got {validation_size}")


def _check_mnist(arrays: dict[str, np.ndarray], directory: Path) -> None:
    """Checks specific to MNIST: 60,000 + 10,000 images of 28x28, labels 0..9."""
    expected = {
        "train_images": (TRAINING_SIZE + VALIDATION_SIZE, *_IMAGE_SHAPE),
        "train_labels": (TRAINING_SIZE + VALIDATION_SIZE,),
        "test_images": (TEST_SIZE, *_IMAGE_SHAPE),
        "test_labels": (TEST_SIZE,),
    }
    for role, shape in expected.items():
        if arrays[role].shape != shape:
            raise DatasetError(
                f"MNIST {FILES[role]} in {directory} has shape {arrays[role].shape}, expected {shape}"
            )
    for role in ("train_labels", "test_labels"):
        if arrays[role].size and arrays[role].max() > 9:
            raise DatasetError(f"MNIST {FILES[role]} in {directory} has labels above 9")


def _to_data(arrays: dict[str, np.ndarray], directory: Path, validation_size: int) -> MnistData:
    """Convert uint8 images to float32 in [0, 1] (once) and cut the splits."""

    def images(array: np.ndarray) -> np.ndarray:
        flat = array.reshape(len(array), -1)
        return np.divide(flat, np.float32(255), dtype=np.float32)

    train_images = images(arrays["train_images"])  # one array; the two splits are views on it
    train_labels = arrays["train_labels"].astype(np.int64)
    cut = len(train_labels) - validation_size
    return MnistData(
        training=Split(train_images[:cut], train_labels[:cut]),
        validation=Split(train_images[cut:], train_labels[cut:]),
        test=Split(images(arrays["test_images"]), arrays["test_labels"].astype(np.int64)),
        source=directory,
    )


def load_mnist(
    path: str | os.PathLike | None = None, *, download: bool = True, progress: bool | None = None
) -> MnistData:
    """Load MNIST, split as in the book.

    The files are found with :func:`find_mnist`; if none are found and
    ``download`` is true (and no ``path`` was given) they are downloaded
    into :func:`cache_dir` first.  Every file is verified against the
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
            directory = download_mnist(cache_dir(), DEFAULT_MIRRORS, progress=progress)
        except DownloadError as failed:
            raise DownloadError(f"{not_found}; and downloading failed: {failed}") from None
    arrays = _read_four(directory, verify=True)
    _check_mnist(arrays, directory)
    _check_layout(arrays, directory, VALIDATION_SIZE)
    return _to_data(arrays, directory, VALIDATION_SIZE)


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
    _check_validation_size(validation_size)
    directory = Path(directory).expanduser()
    why = _why_not(directory)
    if why is not None:
        places = [(str(directory), why)]
        raise DataNotFoundError(
            f"cannot load an idx data set from {directory}: it {why}", places
        )
    arrays = _read_four(directory, verify=False)
    _check_layout(arrays, directory, validation_size)
    return _to_data(arrays, directory, validation_size)
