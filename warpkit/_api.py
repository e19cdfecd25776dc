"""Everything ``import warpkit`` offers, imported for real (torch included) the first time a name is used.

``warpkit/__init__.py`` stays cheap (PEP 562): the command line's ``--help`` and the pytest plugin import the
package without paying for torch. Add a public name here, to ``__all__`` in ``__init__.py`` and to its
``TYPE_CHECKING`` block (tests/test_packaging.py checks that the three agree).
"""

from __future__ import annotations

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
from ._registry import families, get_family, register_builtins, register_family
from ._sampler import sample
from ._warp import warp
from .families import Affine, Projective, ThinPlateSpline

register_builtins()

from . import nn, plugin, testing  # noqa: E402  (they need the registry filled)

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
