"""Small typed configurations: the base class every nndl configuration (and experiment) derives from.

A ``Settings`` is a frozen dataclass that validates itself on construction
and converts to and from a plain dict (JSON) that rejects unknown keys; a
setting may itself be a Settings, written as a nested dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any, ClassVar, TypeVar

from nndl.errors import ConfigError
from nndl.lookup import normalise

__all__ = ["Settings", "choice"]

S = TypeVar("S", bound="Settings")


def choice(value: object, choices: Collection[str], what: str, canon: Callable[[str], str] = normalise) -> str:
    """``value`` (canonicalised by ``canon``) if it is one of ``choices``, else ConfigError naming ``what``."""
    key = canon(value) if isinstance(value, str) else value
    if not (isinstance(key, str) and key in choices):
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return key


def _plain(value: object) -> Any:
    """``value`` as plain data for JSON: a Settings as its dict, a tuple as a list."""
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class Settings:
    """to_dict / from_dict / replace for frozen dataclasses of settings.

    The configurations below derive from it, and so do the experiments'
    (``nndl.experiments``): a setting may itself be a Settings (a network
    inside an experiment), and ``to_dict`` writes it as a nested dict.
    """

    # Every Settings is a dataclass (so ``dataclasses.fields`` and ``replace`` apply): its fields are here.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[S], data: object, source: str | None = None) -> S:
        """The configuration a dict describes; unknown keys are an error, missing ones take their defaults."""
        where = f" in {source}" if source else ""
        if not isinstance(data, dict):
            raise ConfigError(f"a {cls.__name__}{where} must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} setting(s){where}: {', '.join(map(str, unknown))}")
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{e}{where}") from None

    def replace(self: S, **changes: Any) -> S:
        """A copy with some settings changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)
