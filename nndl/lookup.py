"""One way to turn a name into a strategy: "relu" -> ReLU(), "cross-entropy" -> CrossEntropyCost().

Activations, costs, initialisers, regularisers and schedules are all chosen
by name on the command line, in configurations and in model files, or passed
as objects from Python. ``lookup`` serves them all, with the same spelling
rules (case, spaces, ``_`` for ``-``) and the same message for a name it does
not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, overload

from nndl.errors import ConfigError

__all__ = ["lookup", "normalise"]

T = TypeVar("T")


def normalise(name: str) -> str:
    """The canonical spelling of a name: lower case, trimmed, ``_`` as ``-``."""
    return name.strip().lower().replace("_", "-")


@overload
def lookup(spec: object, table: Mapping[str, type[T]], what: str, *, base: type[T],
           aliases: Mapping[str, str] | None = None, make: Literal[True] = True) -> T: ...


@overload
def lookup(spec: object, table: Mapping[str, T], what: str, *, base: None = None,
           aliases: Mapping[str, str] | None = None, make: Literal[False]) -> T: ...


def lookup(spec: object, table: Mapping[str, Any], what: str, *, base: type[object] | None = None,
           aliases: Mapping[str, str] | None = None, make: bool = True) -> Any:
    """The strategy ``spec`` names.

    Parameters
    ----------
    spec : str, class or instance
        A name in ``table`` (or ``aliases``); a subclass of ``base``
        (instantiated when ``make``); or an instance of ``base``, returned
        as it is.
    table : dict
        Canonical name -> class (or callable, when ``make`` is False).
    what : str
        What is being chosen, for the message ("activation", "cost", ...).
    base : type, optional
        The class instances and subclasses must derive from.
    aliases : dict, optional
        Other spellings -> canonical names.
    make : bool
        Call the table's entry to make an instance (classes), or return it
        as it is (functions).

    Raises
    ------
    ConfigError
        When ``spec`` names nothing known, listing the choices.
    """
    if base is not None:
        if isinstance(spec, base):
            return spec
        if isinstance(spec, type) and issubclass(spec, base):
            return spec() if make else spec
    if isinstance(spec, str):
        key = normalise(spec)
        key = (aliases or {}).get(key, key)
        if key in table:
            return table[key]() if make else table[key]
    raise ConfigError(f"unknown {what} {spec!r}; choose one of: {', '.join(table)}")
