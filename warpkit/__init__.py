"""warpkit: differentiable image warping for PyTorch, validated against OpenCV and Kornia.

``import warpkit`` is cheap: torch and the families are imported the first time a public name is used
(PEP 562 ``__getattr__``), so that ``warpkit --help`` and the pytest plugin do not pay for torch. The names
themselves live in :mod:`warpkit._api`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Affine",
    "BackendError",
    "Composed",
    "ConvergenceWarning",
    "Direction",
    "DTypeError",
    "DegenerateInputError",
    "DeviceError",
    "Interpolation",
    "ModeError",
    "Padding",
    "PluginLoadError",
    "Projective",
    "ShapeError",
    "SingularMatrixError",
    "SizeLimitError",
    "ThinPlateSpline",
    "Transform",
    "UnknownFamilyError",
    "WarpkitError",
    "backend",
    "backends",
    "families",
    "get_family",
    "get_max_output_elements",
    "last_backend",
    "nn",
    "normalized_to_pixel",
    "pixel_to_normalized",
    "plugin",
    "testing",
    "register_family",
    "sample",
    "set_max_output_elements",
    "warp",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them on first use
    from . import nn, plugin, testing
    from ._base import Composed, Direction, Transform
    from ._checks import get_max_output_elements, set_max_output_elements
    from ._dispatch import backend, backends, last_backend
    from ._errors import (
        BackendError,
        ConvergenceWarning,
        DegenerateInputError,
        DeviceError,
        DTypeError,
        ModeError,
        PluginLoadError,
        ShapeError,
        SingularMatrixError,
        SizeLimitError,
        UnknownFamilyError,
        WarpkitError,
    )
    from ._grids import normalized_to_pixel, pixel_to_normalized
    from ._modes import Interpolation, Padding
    from ._registry import families, get_family, register_family
    from ._sampler import sample
    from ._warp import warp
    from .families import Affine, Projective, ThinPlateSpline


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'warpkit' has no attribute {name!r}")
    api = importlib.import_module("warpkit._api")
    for public in __all__:  # bind them all at once: later lookups are plain attribute reads
        globals()[public] = getattr(api, public)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*__all__, "__version__"})


class _Package(types.ModuleType):
    """``warpkit.families`` is the registry function, although a subpackage has that name too: importing
    the subpackage (which the lazy loading may do at any time) must not rebind the name to it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "families" and isinstance(value, types.ModuleType):
            return  # the subpackage stays reachable as sys.modules["warpkit.families"]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
