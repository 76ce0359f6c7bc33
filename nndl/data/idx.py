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

Reading trusts nothing in the file: the header is checked before any data
is read, against the file's length when it is uncompressed, and against
``MAX_BYTES`` when it is compressed, and a compressed file is decompressed
only as far as its header declares (plus a small slack), so a small file
that would inflate to gigabytes is refused after a few kilobytes.
"""

from __future__ import annotations

import errno
import gzip
import io
import math
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nndl.errors import IdxError, InputError
from nndl.files.atomic import atomic_writer

__all__ = [
    "IdxError",
    "TYPE_CODES",
    "MAX_BYTES",
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

#: The largest idx content (header and data, uncompressed) read unless the caller allows more:
#: 2 GiB, forty times MNIST's largest file. A header that declares more is refused before any
#: data is read or decompressed.
MAX_BYTES = 1 << 31

#: The longest header there can be: the magic number and 255 dimensions of 4 bytes each.
_MAX_HEADER = 4 + 4 * 255

#: How far a gzip stream may decompress past what its header declares before it is refused; only so
#: that a few stray bytes are reported by count, like trailing bytes in an uncompressed file.
_TRAILING_SLACK = 1 << 16

_COMPRESSED_CHUNK = 1 << 16      # compressed bytes read at a time
_OUTPUT_STEP = 1 << 20           # decompressed bytes produced at a time, at most


class _Header(NamedTuple):
    """What an idx header declares."""

    dtype: np.dtype       # big-endian, as stored
    shape: tuple          # one entry per dimension
    size: int             # bytes of header: 4 + 4 * ndim
    nbytes: int           # bytes of data it promises: itemsize * prod(shape)


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
    IdxError
        If ``path`` is a directory.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode                   # before opening: a named pipe would block open()
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise IdxError(f"idx file '{path}' is not a regular file (a named pipe or a device?)")
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "idx file not found", str(path)) from None
    except IsADirectoryError:
        raise IdxError(f"idx file '{path}' is a directory, not a file") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            raise IdxError(f"idx file '{path}': {e.strerror}") from None
        raise


def _parse_header(prefix, total: int | None, name: str, max_bytes: int) -> _Header:
    """Check the header at the start of idx content, before any of its data is read.

    Parameters
    ----------
    prefix : bytes-like
        The first ``min(total, _MAX_HEADER)`` bytes of the (uncompressed) content.
    total : int or None
        The content's whole length, or None while it is not known yet (a gzip
        stream still being decompressed).
    name : str
        How to name the file in messages.
    max_bytes : int
        The most bytes of content (header and data) allowed.

    Raises
    ------
    IdxError
        On a short, empty or truncated file, a bad magic number, an unknown
        type, zero dimensions, a length (when known) other than the header
        promises, or a promise of more than ``max_bytes``.
    """
    size = len(prefix)
    if total == 0:
        raise IdxError(f"{name} is empty (0 bytes)")
    if size < 4:
        raise IdxError(
            f"{name} is too short to be an idx file: it has {size} bytes, "
            "but the magic number alone takes 4"
        )
    if prefix[0] != 0 or prefix[1] != 0:
        shown = " ".join(f"{b:02x}" for b in prefix[:4])
        raise IdxError(
            f"{name} does not start with an idx magic number: expected two zero bytes, "
            f"a type code and a dimension count, but the first bytes are {shown}"
        )
    type_code, ndim = prefix[2], prefix[3]
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
    shape = struct.unpack(f">{ndim}I", bytes(prefix[4:header_size]))
    dtype, label = TYPE_CODES[type_code]
    nbytes = dtype.itemsize * math.prod(shape)          # a Python int: no overflow, whatever the dims
    if total is not None:
        present = total - header_size
        if present < nbytes:
            raise IdxError(
                f"{name} is truncated: header promises {nbytes} bytes of data "
                f"but only {present} are present (shape {shape}, {label})"
            )
        if present > nbytes:
            raise IdxError(
                f"{name} has {present - nbytes} unexpected trailing bytes: header promises "
                f"{nbytes} bytes of data (shape {shape}) but {present} are present"
            )
    if header_size + nbytes > max_bytes:
        raise IdxError(
            f"{name} declares shape {shape} of {label}s, {header_size + nbytes:,} bytes in all, "
            f"more than the {max_bytes:,} bytes nndl reads (pass max_bytes= to read more)"
        )
    return _Header(dtype, shape, header_size, nbytes)


class _GzipStream:
    """The decompressed content of a gzip file, produced a bounded piece at a time.

    Unlike ``gzip.decompress`` this never inflates more than asked for, so a
    small file that decompresses to gigabytes (a "gzip bomb") costs only what
    is read of it. Like ``gzip``, it reads every member of a multi-member
    file and skips zero padding between members; the CRC and length of each
    member are checked by zlib when its end is reached.
    """

    def __init__(self, read, name):
        self._read = read                       # read(n) -> up to n compressed bytes
        self._name = name
        self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)      # a gzip wrapper
        self._input = b""                       # compressed bytes not yet given to the decompressor
        self._input_done = False

    def read(self, n: int) -> bytes:
        """At most ``n`` (> 0) decompressed bytes; b"" only at the end of the last member."""
        try:
            while True:
                if self._member.eof:
                    self._input = self._input.lstrip(b"\0")
                    if not self._input:
                        if not self._more():
                            return b""
                        continue
                    self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                out = self._member.decompress(self._input, n)
                self._input = self._member.unused_data if self._member.eof else self._member.unconsumed_tail
                if out:
                    return out
                if not self._input and not self._member.eof and not self._more():
                    raise EOFError("the compressed data ends before the end of the stream")
        except (zlib.error, EOFError) as exc:
            raise IdxError(
                f"{self._name} starts like a gzip file but its gzip stream is corrupt "
                f"or truncated ({type(exc).__name__}: {exc}); the file is damaged, "
                "try getting a fresh copy"
            ) from None

    def _more(self) -> bool:
        """Read more compressed input; False at the end of the file."""
        if not self._input_done:
            self._input = self._read(_COMPRESSED_CHUNK)
            self._input_done = not self._input
        return not self._input_done


def _gunzip(read, name: str, max_bytes: int) -> bytearray:
    """Decompress gzipped idx content, never past what its header declares (plus a small slack).

    The header is read from the first decompressed bytes and checked (against
    ``max_bytes`` too) before the rest is decompressed; decompression stops as
    soon as the output passes the declared size by ``_TRAILING_SLACK``.
    The content returned is checked exactly by :func:`parse_idx`.
    """
    stream = _GzipStream(read, name)
    content = bytearray()
    _fill(stream, content, _MAX_HEADER)
    total = len(content) if len(content) < _MAX_HEADER else None     # short: the stream has ended
    header = _parse_header(content, total, name, max_bytes)
    limit = header.size + header.nbytes + _TRAILING_SLACK
    _fill(stream, content, limit + 1)
    if len(content) > limit:
        raise IdxError(
            f"{name} decompresses to more than its header declares ({header.nbytes:,} bytes of data, "
            f"shape {header.shape}); refused after {len(content):,} bytes. It is not a valid idx file "
            "(possibly a decompression bomb)"
        )
    return content


def _fill(stream: _GzipStream, buffer: bytearray, limit: int) -> None:
    """Decompress into ``buffer`` until it holds ``limit`` bytes or the stream ends."""
    while len(buffer) < limit:
        chunk = stream.read(min(limit - len(buffer), _OUTPUT_STEP))
        if not chunk:
            return
        buffer += chunk


def gunzip_if_needed(data, source: str | os.PathLike = "<bytes>", *, max_bytes: int = MAX_BYTES):
    """Decompress idx ``data`` if it is gzip (starts with 0x1f 0x8b), else return it as is.

    Decompression is bounded: the idx header is read from the first
    decompressed bytes and checked, and no more than it declares (plus a
    small slack) is ever decompressed.

    Parameters
    ----------
    data : bytes-like
        The bytes of an idx file, compressed or not.
    source : str or path-like, optional
        Where the bytes came from, used in error messages.
    max_bytes : int
        The most bytes of uncompressed content allowed.

    Returns
    -------
    bytes or bytearray
        The uncompressed bytes (``data`` itself when it is not gzip).

    Raises
    ------
    IdxError
        If the data looks like gzip but cannot be decompressed, or its
        content is not idx, or it is larger than its header says.
    """
    if bytes(data[:2]) != GZIP_MAGIC:
        return data
    return _gunzip(io.BytesIO(data).read, f"idx file '{source}'", max_bytes)


def parse_idx(data, source: str | os.PathLike = "<bytes>", *, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Decode the (uncompressed) bytes of an idx file into an array.

    Parameters
    ----------
    data : bytes-like
        The complete, uncompressed contents of an idx file.
    source : str or path-like, optional
        Where the bytes came from, used in error messages.
    max_bytes : int
        The most bytes of content allowed.

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
    header = _parse_header(data[:_MAX_HEADER], len(data), f"idx file '{source}'", max_bytes)
    count = header.nbytes // header.dtype.itemsize
    array = np.frombuffer(data, dtype=header.dtype, count=count, offset=header.size).reshape(header.shape)
    if header.dtype.itemsize > 1:
        array = array.astype(header.dtype.newbyteorder("="))  # one copy, to native byte order
    array.flags.writeable = False
    return array


def read_idx(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an idx file, gzip-compressed or not.

    Compression is detected from the gzip magic bytes (0x1f 0x8b), not from
    the file name. Nothing is allocated from what the header declares
    before it is checked: an uncompressed file's header against the file's
    length, a compressed one's against ``max_bytes``, and decompression stops
    as soon as it passes the declared size.

    Parameters
    ----------
    path : str or path-like
        The idx file.
    max_bytes : int
        The most bytes of (uncompressed) content allowed; default ``MAX_BYTES``.

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
        If the file is a directory, empty, not an idx file, corrupt gzip,
        truncated, larger than its header says or than ``max_bytes``.
    """
    path = Path(path)
    name = f"idx file '{path}'"
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "idx file not found", str(path)) from None
    except IsADirectoryError:
        raise IdxError(f"{name} is a directory, not a file") from None
    content: bytes | bytearray
    with f:
        if f.read(2) == GZIP_MAGIC:
            f.seek(0)
            content = _gunzip(f.read, name, max_bytes)
        else:
            f.seek(0)
            size = os.fstat(f.fileno()).st_size
            _parse_header(f.read(_MAX_HEADER), size, name, max_bytes)  # before reading the data
            f.seek(0)
            content = f.read(size)
    return parse_idx(content, path, max_bytes=max_bytes)


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
    InputError
        If the dtype has no idx type code, the array is 0-d or has more
        than 255 dimensions, or a dimension does not fit in 32 bits.
    OutputError
        If the file cannot be written.
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
        raise InputError(
            f"cannot write dtype {array.dtype} to idx file '{path}': the idx format supports "
            f"only {supported}; convert the array first, e.g. array.astype(np.int32)"
        )
    if array.ndim == 0:
        raise InputError(f"cannot write a 0-d array to idx file '{path}': idx needs at least 1 dimension")
    if array.ndim > 255:
        raise InputError(f"cannot write a {array.ndim}-d array to idx file '{path}': at most 255 dimensions")
    if any(d >= 2**32 for d in array.shape):
        raise InputError(f"cannot write shape {array.shape} to idx file '{path}': dimensions must be < 2**32")

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
