"""The conformance kit: the checks every transform family must pass, for plugin authors and the CLI.

``check_family(FamilyOrName)`` runs every check and returns a :class:`Report`; :class:`FamilyTests` is a
pytest mix-in where each check is its own test::

    from warpkit.testing import FamilyTests

    class TestMyFamily(FamilyTests):
        family = MyFamily          # or its registered name

cv2 and kornia are optional: their parity checks are skipped, with the reason, when they are missing.
The names are imported on first use, so that the pytest plugin (``warpkit.testing.pytest_plugin``) costs
nothing in a pytest session that never asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CHECKS",
    "CheckResult",
    "FamilyTests",
    "Report",
    "Skip",
    "check_family",
    "example",
    "example_params",
    "format_table",
]

_WHERE = {name: "._kit" for name in __all__} | {"FamilyTests": "._mixin"}

if TYPE_CHECKING:
    from ._kit import CHECKS, CheckResult, Report, Skip, check_family, example, example_params, format_table
    from ._mixin import FamilyTests


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'warpkit.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
