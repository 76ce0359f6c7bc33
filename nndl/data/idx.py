"""Reading and writing files in the idx format.

The idx format is the simple binary format MNIST is distributed in.  A file
is a header followed by the raw array data:

* 2 bytes: always zero;
* 1 byte: the type code of the data (see ``TYPE_CODES``);
* 1 byte: the number of dimensions ``ndim``;
* ``ndim`` big-endian unsigned 32-bit integers: the size of each dimension;
* the data, in C (row-major) order, each item big-endian.

Files are often gzip-compressed; :func:`read_idx` recognises gzip by its
magic bytes, whatever the file is called.
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from nndl.errors import IdxError
from nndl.files.atomic import atomic_writer

__all__ = [
    "IdxError",
    "TYPE_CODES",
    "read_idx",
    "write_idx",
    "parse_idx",
    "read_file_bytes",
    "gunzip_if_needed",
]

#: Type code byte -> (big-endian NumPy dtype, human-readable name).
TYPE_CODES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype(">u1"), "unsigned byte"),
    0x09: (np.dtype(">i1"), "signed byte"),
    0x0B: (np.dtype(">i2"), "short (int16)"),
    0x0C: (np.dtype(">i4"), "int (int32)"),
    0x0D: (np.dtype(">f4"), "float (float32)"),
    0x0E: (np.dtype(">f8"), "double (float64)"),
}

GZIP_MAGIC = b"\x1f\x8b"


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole file into memory.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    bytes
        The file's contents, exactly as stored (still gzipped if it is).

    Raises
    ------
    FileNotFoundError
        If there is no such file; the message names the path.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "idx file not found", str(path)) from None


def gunzip_if_needed(data: bytes, source: str | os.PathLike = "<bytes>") -> bytes:
    """Decompress ``data`` if it is gzip (starts with 0x1f 0x8b), else return it as is.

    Parameters
    ----------
    data : bytes
        The bytes of a file, compressed or not.
    source : str or path-like, optional
        Where the bytes came from, used in error messages.

    Returns
    -------
    bytes
        The uncompressed bytes.

    Raises
    ------
    IdxError
        If the data looks like gzip but cannot be decompressed.
    """
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxError(
            f"idx file '{source}' starts like a gzip file but its gzip stream is corrupt "
            f"or truncated ({type(exc).__name__}: {exc}); the file is damaged, "
            "try getting a fresh copy"
        ) from None


def parse_idx(data: bytes, source: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Decode the (uncompressed) bytes of an idx file into an array.

    Parameters
    ----------
    data : bytes
        The complete, uncompressed contents of an idx file.
    source : str or path-like, optional
        Where the bytes came from, used in error messages.

    Returns
    -------
    numpy.ndarray
        Read-only array with the dtype and shape given by the header, in
        native byte order.  For the byte types (0x08, 0x09) the array is a
        view on ``data`` (no copy); for wider types it is converted to native
        byte order once.  Call ``.copy()`` if you need a writable array.

    Raises
    ------
    IdxError
        If the header is malformed or the data length does not match the
        dimensions exactly.
    """
    name = f"idx file '{source}'"
    size = len(data)
    if size == 0:
        raise IdxError(f"{name} is empty (0 bytes)")
    if size < 4:
        raise IdxError(
            f"{name} is too short to be an idx file: it has {size} bytes, "
            "but the magic number alone takes 4"
        )
    if data[0] != 0 or data[1] != 0:
        shown = " ".join(f"{b:02x}" for b in data[:4])
        raise IdxError(
            f"{name} does not start with an idx magic number: expected two zero bytes, "
            f"a type code and a dimension count, but the first bytes are {shown}"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in TYPE_CODES:
        known = ", ".join(f"0x{code:02X} {label}" for code, (_, label) in TYPE_CODES.items())
        raise IdxError(f"{name} has unknown data type code 0x{type_code:02X} (known codes: {known})")
    if ndim == 0:
        raise IdxError(f"{name} declares 0 dimensions; an idx file needs at least 1")
    header_size = 4 + 4 * ndim
    if size < header_size:
        raise IdxError(
            f"{name} is truncated: its header declares {ndim} dimensions, which needs "
            f"{header_size} header bytes, but the file has only {size} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = TYPE_CODES[type_code][0]
    expected = dtype.itemsize * math.prod(shape)
    present = size - header_size
    if present < expected:
        raise IdxError(
            f"{name} is truncated: header promises {expected} bytes of data "
            f"but only {present} are present (shape {shape}, {TYPE_CODES[type_code][1]})"
        )
    if present > expected:
        raise IdxError(
            f"{name} has {present - expected} unexpected trailing bytes: header promises "
            f"{expected} bytes of data (shape {shape}) but {present} are present"
        )
    count = expected // dtype.itemsize
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))  # one copy, to native byte order
    array.flags.writeable = False
    return array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file, gzip-compressed or not.

    Compression is detected from the gzip magic bytes (0x1f 0x8b), not from
    the file name.

    Parameters
    ----------
    path : str or path-like
        The idx file.

    Returns
    -------
    numpy.ndarray
        Read-only array with the dtype and shape given by the file's header,
        e.g. uint8 of shape (60000, 28, 28) for the MNIST training images.
        See :func:`parse_idx`.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    IdxError
        If the file is empty, not an idx file, corrupt gzip, truncated, or has
        trailing bytes after the data.
    """
    return parse_idx(gunzip_if_needed(read_file_bytes(path), path), path)


def write_idx(path: str | os.PathLike, array, compress: bool | None = None) -> Path:
    """Write an array as an idx file, atomically.

    The data goes to a temporary file in the same directory, which is then
    renamed over ``path``, so a reader never sees a half-written file.

    Parameters
    ----------
    path : str or path-like
        Destination file; missing parent directories are created.
    array : array_like
        Data with at least one dimension and dtype uint8, int8, int16,
        int32, float32 or float64 (any byte order).
    compress : bool, optional
        Gzip the file.  By default, compress exactly when ``path`` ends in
        ``.gz``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If the dtype has no idx type code.
    ValueError
        If the array is 0-d or a dimension does not fit in 32 bits.
    """
    path = Path(path)
    array = np.asarray(array)
    if compress is None:
        compress = path.name.endswith(".gz")
    type_code = None
    for code, (dtype, _) in TYPE_CODES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            type_code = code
            break
    if type_code is None:
        supported = "uint8, int8, int16, int32, float32, float64"
        raise TypeError(
            f"cannot write dtype {array.dtype} to idx file '{path}': the idx format supports "
            f"only {supported}; convert the array first, e.g. array.astype(np.int32)"
        )
    if array.ndim == 0:
        raise ValueError(f"cannot write a 0-d array to idx file '{path}': idx needs at least 1 dimension")
    if array.ndim > 255:
        raise ValueError(f"cannot write a {array.ndim}-d array to idx file '{path}': at most 255 dimensions")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"cannot write shape {array.shape} to idx file '{path}': dimensions must be < 2**32")

    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=TYPE_CODES[type_code][0]).tobytes()

    with atomic_writer(path) as raw:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(header)
                gz.write(body)
        else:
            raw.write(header)
            raw.write(body)
    return path
