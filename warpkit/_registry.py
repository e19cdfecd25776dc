"""The name -> family registry: built-ins, in-process registrations and entry-point plugins."""

from __future__ import annotations

import threading
import types

from ._base import Transform
from ._errors import UnknownFamilyError, WarpkitError

__all__ = ["families", "get_family", "register_family"]

_lock = threading.RLock()
_families: dict[str, type[Transform]] = {}


def register_family(cls: type[Transform] | None = None, *, name: str | None = None, replace: bool = False):
    """Class decorator: register a :class:`Transform` subclass under ``name`` (default ``cls.name``)."""

    def decorate(family: type[Transform]) -> type[Transform]:
        if not (isinstance(family, type) and issubclass(family, Transform)):
            raise WarpkitError(f"family: expected a subclass of warpkit.Transform, got {family!r}")
        key = name or family.name
        if not key:
            raise WarpkitError(f"family: {family.__name__} has no name; set the class attribute `name`")
        with _lock:
            existing = _families.get(key)
            if existing is not None and existing is not family and not replace:
                raise WarpkitError(
                    f"name: {key!r} is already registered to {existing.__module__}.{existing.__qualname__}; "
                    f"cannot register {family.__module__}.{family.__qualname__} (pass replace=True)"
                )
            _families[key] = family
        return family

    return decorate(cls) if cls is not None else decorate


def families() -> types.MappingProxyType:
    """Read-only mapping name -> family class."""
    with _lock:
        return types.MappingProxyType(dict(_families))


def get_family(name: str) -> type[Transform]:
    """The family registered under ``name``."""
    with _lock:
        family = _families.get(name)
    if family is None:
        valid = ", ".join(sorted(_families))
        raise UnknownFamilyError(f"name: expected one of {valid}, got {name!r}")
    return family
