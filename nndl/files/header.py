"""One check for the header every nndl file carries: its kind and its format version.

Model files, training histories and expanded data sets all start from a JSON
object with ``"format"`` (the kind of file) and ``"version"`` (an integer).
``check_header`` says, in the same words for every kind, what is wrong when
a file is not of the expected kind or was written by a newer nndl.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from nndl.errors import FileFormatError

__all__ = ["check_header", "parse_json", "brief", "too_deep", "MAX_DEPTH"]

#: The deepest nesting of lists and objects any nndl file has is under ten; a file nested deeper than this
#: is not one of nndl's (and would make code that walks it recursively exhaust the stack).
MAX_DEPTH = 100

_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxstring, _BRIEF.maxother = 2, 6, 4, 60, 60


def brief(value: object) -> str:
    """A short ``repr`` of a value read from a file, for messages.

    A malformed file can hold a megabyte string or a list nested a thousand
    deep; quoting it in full would bury the message (or exhaust the stack).
    """
    return _BRIEF.repr(value)


def parse_json(raw: str | bytes | bytearray, source: str, error: type[FileFormatError] = FileFormatError,
               kind: str | None = None) -> Any:
    """Parse JSON text or bytes, turning every way it can fail into ``error``.

    ``kind`` (e.g. "nndl-model") names what the file should have been, so a
    wrong file reads "net.png is not an nndl-model file: not valid JSON".

    Input nested deeper than ``MAX_DEPTH`` (which would make ``json``, or any
    code walking the result, recurse past Python's limit), integers too long
    to convert (over 4,300 digits) and invalid UTF-8 are reported like any
    other malformed file.
    """
    prefix = f"{source} is not an {kind} file: " if kind else f"{source} is "
    try:
        if isinstance(raw, (bytes, bytearray)):
            raw = bytes(raw).decode("utf-8")
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise error(f"{prefix}not a text file (it is not valid UTF-8)") from None
    except ValueError as e:                  # json.JSONDecodeError, or an integer with too many digits
        raise error(f"{prefix}not valid JSON ({e})") from None
    except RecursionError:
        deep = True
    else:
        deep = too_deep(data)
    if deep:
        raise error(f"{source} is nested too deeply to be an nndl file (over {MAX_DEPTH} levels)")
    return data


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists, tuples and dicts more than ``limit`` deep (found without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (list, tuple, dict)):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
                     if isinstance(child, (list, tuple, dict)))
    return False


def check_header(data: object, kind: str, version: int, source: str, error: type[FileFormatError] = FileFormatError,
                 version_key: str = "version") -> int:
    """Check that ``data`` is the header of a ``kind`` file this nndl can read.

    Parameters
    ----------
    data : object
        The parsed JSON header.
    kind : str
        The expected ``"format"``, e.g. ``"nndl-model"``.
    version : int
        The newest format version this nndl reads.
    source : str
        How to name the file in messages (its path).
    error : type
        The ``FileFormatError`` subclass to raise.

    Returns
    -------
    int
        The file's format version (1 <= v <= version).
    """
    if not isinstance(data, dict):
        raise error(f"{source} is not an {kind} file (expected a JSON object, found {type(data).__name__})")
    if data.get("format") != kind:
        found = data.get("format")
        what = f"its format is {brief(found)}" if isinstance(found, str) else f"no \"format\": \"{kind}\""
        raise error(f"{source} is not an {kind} file ({what})")
    found = data.get(version_key)
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise error(f"{source}: malformed format version {brief(found)}")
    if found > version:
        raise error(f"{source} was written in {kind} format version {found}, newer than this nndl "
                    f"reads (version {version}); upgrade nndl to read it")
    return found
