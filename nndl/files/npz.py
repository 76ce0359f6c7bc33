"""Reading ``.npz`` archives without trusting them.

``np.load`` of an ``.npz`` file reads a member's whole array as soon as it
is asked for, with the shape its header declares. A small malicious file can
declare a huge shape, or compress gigabytes into kilobytes. ``read_npz``
first lists the members and reads only each member's ``.npy`` header
(dtype and shape), checks them against what the caller expects and a limit
on the number of elements and bytes, and only then reads the data, never
more of it than the header declared. Pickled objects are never loaded.
"""

from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any, TypeAlias

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from nndl.errors import FileFormatError

__all__ = ["read_npz", "MAX_ELEMENTS", "MemberSpec"]

#: What a member must be: the dtype kinds allowed ("f", "iu", "U"), or those and its exact shape.
MemberSpec: TypeAlias = "str | tuple[str, tuple[int, ...]]"

#: The most array elements one member may declare unless the caller says otherwise (about 2 GB of float64).
MAX_ELEMENTS = 256 * 1024 * 1024

#: Everything that reading a damaged archive or member can raise, besides the caller's ``error``:
#: a bad zip structure, damaged deflate data, an unsupported or encrypted compression method, a
#: malformed ``.npy`` header (which numpy parses with ``ast.literal_eval``).
_DAMAGE = (zipfile.BadZipFile, zlib.error, struct.error, OSError, EOFError, ValueError, SyntaxError,
           tokenize.TokenError, RuntimeError, NotImplementedError)


def _header(member: IO[bytes], name: str, source: str,
            error: type[FileFormatError]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, fortran_order, dtype) from the start of one ``.npy`` member."""
    try:
        major, minor = npy_format.read_magic(member)
        if (major, minor) == (1, 0):
            return npy_format.read_array_header_1_0(member)
        if (major, minor) == (2, 0):
            return npy_format.read_array_header_2_0(member)
    except _DAMAGE as e:
        raise error(f"{source}: member {name!r} is not a NumPy array ({e})") from None
    raise error(f"{source}: member {name!r} uses .npy format version {major}.{minor}, which nndl does not read")


def read_npz(source: str | os.PathLike[str] | IO[bytes], members: Mapping[str, MemberSpec], *,
             allow_extra: bool = False, max_elements: int = MAX_ELEMENTS,
             error: type[FileFormatError] = FileFormatError, label: str | None = None,
             max_bytes: int | None = None) -> dict[str, NDArray[Any]]:
    """Read the named arrays of an ``.npz`` archive after checking their headers.

    Parameters
    ----------
    source : str, Path or binary file object
    members : dict
        name -> what the member must be: either a string of the
        ``numpy.dtype.kind`` letters allowed (``"f"`` float, ``"iu"``
        integers, ``"U"`` text), or a pair ``(kinds, shape)`` when its exact
        shape is known, e.g. ``("f", (30, 784))``. Every name must be present.
    allow_extra : bool
        Whether members not named are tolerated (they are never read).
    max_elements : int
        The most elements any one member may declare.
    error : type
        The exception to raise (a ``FileFormatError`` subclass).
    label : str, optional
        How to name the file in messages (default: ``source``).
    max_bytes : int, optional
        The most bytes of data any one member may declare (text members hold
        one element of any width). Default: ``8 * max_elements``, as many
        bytes as ``max_elements`` float64 values.

    Returns
    -------
    dict of str -> ndarray
        Writeable arrays in native byte order.

    Raises
    ------
    error
        If the archive is not a readable zip file, or a member is missing,
        unexpected, not an array, of another dtype kind or shape, declares
        more than the limits, or holds less or more data than it declares.
        Always before more data is read than the expectations allow.
    FileNotFoundError, PermissionError, IsADirectoryError
        If ``source`` cannot be opened at all.
    """
    label = str(source) if label is None else label
    max_bytes = 8 * max_elements if max_bytes is None else max_bytes
    try:
        archive = zipfile.ZipFile(source)
    except _DAMAGE as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise error(f"{label} is not a readable .npz file ({e})") from None
    with archive:
        found = {}
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name in found:
                raise error(f"{label}: member {name!r} appears twice")
            found[name] = info
        missing = [name for name in members if name not in found]
        if missing:
            raise error(f"{label}: missing member(s) {', '.join(missing)}")
        extra = sorted(set(found) - set(members))
        if extra and not allow_extra:
            raise error(f"{label}: unexpected member(s) {', '.join(extra)}")
        return {name: _read_member(archive, found[name], name, spec, label, error, max_elements, max_bytes)
                for name, spec in members.items()}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, spec: MemberSpec, label: str,
                 error: type[FileFormatError], max_elements: int, max_bytes: int) -> NDArray[Any]:
    """One member's array, its header checked against ``spec`` and the limits before its data is read."""
    kinds, expected_shape = spec if isinstance(spec, tuple) else (spec, None)
    try:
        with archive.open(info) as member:
            shape, fortran_order, dtype = _header(member, name, label, error)
            if dtype.hasobject or dtype.kind not in kinds:
                raise error(f"{label}: member {name!r} has dtype {dtype}, expected "
                            f"{' or '.join(_KIND_NAMES.get(k, k) for k in kinds)}")
            if any(d < 0 for d in shape):
                raise error(f"{label}: member {name!r} declares an impossible shape {shape}")
            if expected_shape is not None and tuple(shape) != tuple(expected_shape):
                raise error(f"{label}: member {name!r} has shape {shape}, expected {tuple(expected_shape)}")
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            if count > max_elements or nbytes > max_bytes:
                limit = f"{max_elements:,} values" if count > max_elements else f"{max_bytes:,} bytes"
                raise error(f"{label}: member {name!r} declares shape {shape} of {dtype} ({count:,} values, "
                            f"{nbytes:,} bytes), more than the {limit} allowed")
            data = member.read(nbytes + 1)                   # one byte more: to notice extra data
        if len(data) != nbytes:
            holds = f"{len(data):,} bytes of data" if len(data) < nbytes else "more data than that"
            raise error(f"{label}: member {name!r} holds {holds}, but its shape {shape} needs {nbytes:,} bytes")
        array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
        return array.astype(dtype.newbyteorder("="))        # a writeable copy in native byte order
    except _DAMAGE as e:
        if isinstance(e, error):
            raise
        raise error(f"{label}: member {name!r} cannot be read ({e})") from None


_KIND_NAMES = {"f": "floating point", "i": "integer", "u": "unsigned integer", "U": "text", "b": "boolean"}
