"""The name -> family registry: built-ins, in-process registrations and entry-point plugins.

Plugin distributions declare families in the entry-point group ``warpkit.families``
(``name = "package.module:FamilyClass"``). Their names are read from ``importlib.metadata`` at first use;
a plugin module is imported only when its family is asked for (``get_family(name)``, or ``families()``,
which asks for all). A plugin that fails to import never breaks ``import warpkit``: the failure is
recorded, warned about once, and asking for that name raises :class:`PluginLoadError` chained to the
original exception. ``WARPKIT_DISABLE_PLUGINS=1`` turns discovery off.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import threading
import types
import warnings

from ._base import Transform
from ._errors import PluginLoadError, UnknownFamilyError, WarpkitError

__all__ = [
    "ENTRY_POINT_GROUP",
    "FamilyRecord",
    "families",
    "family_records",
    "get_family",
    "register_builtins",
    "register_family",
]

ENTRY_POINT_GROUP = "warpkit.families"
DISABLE_VARIABLE = "WARPKIT_DISABLE_PLUGINS"


@dataclasses.dataclass
class FamilyRecord:
    """Where a family name comes from and whether it can be used.

    ``origin`` is ``"built-in"``, ``"in-process"`` or ``"plugin"``; ``status`` is ``"loaded"``,
    ``"not loaded"`` (a plugin not asked for yet), ``"failed"`` or ``"refused"`` (a duplicate name).
    """

    name: str
    origin: str
    distribution: str | None = None
    version: str | None = None
    target: str | None = None  # "module:attr" of an entry point, or the class's qualified name
    status: str = "loaded"
    family: type[Transform] | None = None
    error: Exception | None = dataclasses.field(default=None, repr=False)
    entry_point: importlib.metadata.EntryPoint | None = dataclasses.field(default=None, repr=False)

    @property
    def owner(self) -> str:
        """Who provides the name, for messages: a distribution and version, or a class path."""
        if self.distribution:
            return f"distribution {self.distribution} {self.version or ''}".rstrip()
        return f"{self.origin} {self.target}"


_lock = threading.RLock()
_records: dict[str, FamilyRecord] = {}
_refused: list[FamilyRecord] = []  # plugin entry points whose name was already taken
_discovered = False
_builtins_registered = False


def register_builtins() -> None:
    """Register the built-in families, once. ``import warpkit`` is lazy, so every lookup (and every
    registration, which must not take a built-in's name) calls this first."""
    global _builtins_registered
    if _builtins_registered:
        return
    _builtins_registered = True
    from .families import Affine, Projective, ThinPlateSpline  # noqa: PLC0415 - they import this module

    for family in (Affine, Projective, ThinPlateSpline):
        register_family(family)


def register_family(cls: type[Transform] | None = None, *, name: str | None = None, replace: bool = False):
    """Class decorator: register a :class:`Transform` subclass under ``name`` (default ``cls.name``).

    A name already taken by another class or by a plugin distribution is refused, naming both owners,
    unless ``replace=True``.
    """

    def decorate(family: type[Transform]) -> type[Transform]:
        if not (isinstance(family, type) and issubclass(family, Transform)):
            raise WarpkitError(f"family: expected a subclass of warpkit.Transform, got {family!r}")
        key = name or family.name
        if not key or not isinstance(key, str):
            raise WarpkitError(f"family: {family.__name__} has no name; set the class attribute `name`")
        target = f"{family.__module__}.{family.__qualname__}"
        origin = "built-in" if family.__module__.startswith("warpkit.") else "in-process"
        register_builtins()
        with _lock:  # no discovery here: built-ins register at import, before any plugin is read
            existing = _records.get(key)
            if existing is not None and existing.family is not family and not replace:
                raise WarpkitError(
                    f"name: {key!r} is already registered to {existing.owner}; cannot register {target} "
                    "(pass replace=True)"
                )
            if existing is not None and existing.family is family:
                return family  # a plugin module that also decorates itself
            _records[key] = FamilyRecord(key, origin, target=target, family=family)
        return family

    return decorate(cls) if cls is not None else decorate


def families() -> types.MappingProxyType:
    """Read-only mapping name -> family class of every usable family (built-in, in-process, plugin).

    Imports every plugin not imported yet; plugins that fail are left out (and warned about once).
    """
    with _lock:
        _discover()
        pending = [r for r in _records.values() if r.status == "not loaded"]
    _load_all(pending)
    with _lock:
        return types.MappingProxyType({n: r.family for n, r in _records.items() if r.status == "loaded"})


def get_family(name: str) -> type[Transform]:
    """The family registered under ``name``; imports its plugin on first use.

    Raises:
        UnknownFamilyError: no family has that name (the message lists the valid ones).
        PluginLoadError: the plugin providing it failed to import or is not a Transform subclass.
    """
    with _lock:
        _discover()
        record = _records.get(name) if isinstance(name, str) else None
        if record is None:
            valid = ", ".join(sorted(n for n, r in _records.items() if r.status != "failed"))
            raise UnknownFamilyError(f"name: expected one of {valid}, got {name!r}")
    _load_all([record])
    with _lock:
        if record.status == "failed" and record.error is not None:
            raise record.error from record.error.__cause__
        if record.status != "loaded" or record.family is None:  # its own import asked for it: no class yet
            raise PluginLoadError(
                f"name: expected a family that has finished importing, got {name!r}, whose plugin "
                f"({record.target}) asked for itself while being imported"
            )
        return record.family


def family_records(load: bool = False) -> list[FamilyRecord]:
    """Every known name with its origin and status, refused duplicates included (for ``warpkit families``).

    ``load=True`` imports the plugins first, so that their status is ``loaded`` or ``failed``.
    """
    with _lock:
        _discover()
        pending = [r for r in _records.values() if r.status == "not loaded"] if load else []
    _load_all(pending)
    with _lock:
        return [dataclasses.replace(r) for r in [*_records.values(), *_refused]]


def _discover() -> None:
    """Read the plugin names from the installed distributions, once. Imports nothing."""
    global _discovered
    register_builtins()
    if _discovered:
        return
    _discovered = True
    if os.environ.get(DISABLE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    try:
        entry_points = _plugin_entry_points()
    except Exception as exc:  # a broken metadata directory must not break `import warpkit`
        warnings.warn(f"warpkit: could not read plugin entry points: {exc!r}", RuntimeWarning, stacklevel=3)
        return
    seen: set[tuple[str, str]] = set()
    for ep, dist_name, version in entry_points:
        if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        record = FamilyRecord(
            ep.name, "plugin", dist_name, version, target=ep.value, status="not loaded", entry_point=ep
        )
        existing = _records.get(ep.name)
        if existing is not None:
            record.status = "refused"
            record.error = PluginLoadError(
                f"plugin {ep.name!r} from {record.owner} refused: the name is already registered to {existing.owner}"
            )
            _refused.append(record)
            warnings.warn(str(record.error), RuntimeWarning, stacklevel=3)
            continue
        _records[ep.name] = record


def _plugin_entry_points() -> list[tuple[importlib.metadata.EntryPoint, str, str | None]]:
    """``(entry point, distribution name, version)`` of the group in every installed distribution.

    Walks the distributions rather than calling ``entry_points(group=...)``: Python 3.9 has neither that
    keyword nor ``EntryPoint.dist``, and the distribution's name is what messages cite.
    """
    found: list[tuple[importlib.metadata.EntryPoint, str, str | None]] = []
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found.append((ep, dist.metadata["Name"] or "unknown", dist.version))
    return found


# name -> (thread importing that plugin, event set when it is done). Plugins are imported outside
# ``_lock``: a plugin whose import calls ``get_family`` while another thread holds the lock (or holds the
# plugin module's import lock and waits for ours) would otherwise deadlock both threads.
_loading: dict[str, tuple[int, threading.Event]] = {}


def _load_all(records: list[FamilyRecord]) -> None:
    """Import the plugins of ``records`` that are not loaded yet, each once, without holding ``_lock``.

    A record another thread is importing is waited for; one this thread is importing (a plugin that asks
    for itself at import) is left as it is.
    """
    me = threading.get_ident()
    for record in records:
        while True:
            with _lock:
                if record.status != "not loaded":
                    break
                owner = _loading.get(record.name)
                if owner is None:
                    done = threading.Event()
                    _loading[record.name] = (me, done)
                elif owner[0] == me:
                    break
            if owner is not None:
                owner[1].wait()
                continue
            try:
                _load(record)
            finally:
                with _lock:
                    del _loading[record.name]
                done.set()
            break


def _load(record: FamilyRecord) -> None:
    """Import a plugin's family; on failure record a chained :class:`PluginLoadError` and warn once.

    Whatever the import raises is contained, ``SystemExit`` and ``KeyboardInterrupt`` included: a plugin
    calling ``sys.exit`` at import must not end the user's program or ``warpkit families``.
    """
    try:
        if record.entry_point is None:
            raise TypeError(f"{record.name!r} has no entry point to load")
        family = record.entry_point.load()
        if not (isinstance(family, type) and issubclass(family, Transform)):
            raise TypeError(f"entry point {record.target} is {family!r}, not a warpkit.Transform subclass")
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        error = PluginLoadError(
            f"plugin {record.name!r} from {record.owner} ({record.target}) failed to load: {type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        with _lock:
            record.status, record.error = "failed", error
        warnings.warn(str(error), RuntimeWarning, stacklevel=4)
        return
    with _lock:
        record.status, record.family = "loaded", family


def _reset_plugins() -> None:
    """Forget every plugin (loaded or not) and read the entry points again at next use. For tests."""
    global _discovered
    with _lock:
        for name in [n for n, r in _records.items() if r.origin == "plugin"]:
            del _records[name]
        _refused.clear()
        _discovered = False
