"""Reading ``.npz`` archives without trusting them.

``np.load`` of an ``.npz`` file reads a member's whole array as soon as it
is asked for, with the shape its header declares. A small malicious file can
declare a huge shape, or compress gigabytes into kilobytes. ``read_npz``
first lists the members and reads only each member's ``.npy`` header
(dtype and shape), checks them against what the caller expects and a limit
on the number of elements, and only then reads the data. Pickled objects are
never loaded.
"""

import math
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from nndl.errors import FileFormatError

__all__ = ["read_npz", "MAX_ELEMENTS"]

#: The most array elements one member may declare unless the caller says otherwise (about 2 GB of float64).
MAX_ELEMENTS = 256 * 1024 * 1024


def _header(member, name, source, error):
    """(shape, fortran_order, dtype) from the start of one ``.npy`` member."""
    try:
        major, minor = npy_format.read_magic(member)
        if (major, minor) == (1, 0):
            return npy_format.read_array_header_1_0(member)
        if (major, minor) == (2, 0):
            return npy_format.read_array_header_2_0(member)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as e:
        raise error(f"{source}: member {name!r} is not a NumPy array ({e})") from None
    raise error(f"{source}: member {name!r} uses .npy format version {major}.{minor}, which nndl does not read")


def read_npz(source, members, *, allow_extra=False, max_elements=MAX_ELEMENTS, error=FileFormatError, label=None):
    """Read the named arrays of an ``.npz`` archive after checking their headers.

    Parameters
    ----------
    source : str, Path or binary file object
    members : dict
        name -> dtype kinds allowed, as a string of ``numpy.dtype.kind``
        letters: ``"f"`` float, ``"iu"`` integers, ``"U"`` text. Every name
        must be present.
    allow_extra : bool
        Whether members not named are tolerated (they are never read).
    max_elements : int
        The most elements any one member may declare.
    error : type
        The exception to raise (a ``FileFormatError`` subclass).
    label : str, optional
        How to name the file in messages (default: ``source``).

    Returns
    -------
    dict of str -> ndarray
    """
    label = str(source) if label is None else label
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
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
        arrays = {}
        for name, kinds in members.items():
            info = found[name]
            try:
                with archive.open(info) as member:
                    shape, fortran_order, dtype = _header(member, name, label, error)
                    if dtype.hasobject or dtype.kind not in kinds:
                        raise error(f"{label}: member {name!r} has dtype {dtype}, expected "
                                    f"{' or '.join(_KIND_NAMES.get(k, k) for k in kinds)}")
                    count = math.prod(shape)
                    if count > max_elements:
                        raise error(f"{label}: member {name!r} declares shape {shape} ({count:,} values), more "
                                    f"than the {max_elements:,} allowed")
                    data = member.read(count * dtype.itemsize + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as e:
                if isinstance(e, error):
                    raise
                raise error(f"{label}: member {name!r} cannot be read ({e})") from None
            if len(data) != count * dtype.itemsize:
                raise error(f"{label}: member {name!r} holds {len(data):,} bytes of data, but its shape {shape} "
                            f"needs {count * dtype.itemsize:,}")
            array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
            arrays[name] = array.astype(dtype.newbyteorder("="))      # a writeable copy in native byte order
        return arrays


_KIND_NAMES = {"f": "floating point", "i": "integer", "u": "unsigned integer", "U": "text", "b": "boolean"}
