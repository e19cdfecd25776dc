"""warpkit: differentiable image warping for PyTorch, validated against OpenCV and Kornia."""

from ._errors import (
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
from ._base import Composed, Transform
from ._checks import get_max_output_elements, set_max_output_elements
from ._modes import Interpolation, Padding
from ._sampler import sample
from ._warp import warp
from . import _fast  # registers the fast CPU sampler backend (numba imported lazily)
from .families import Affine, Projective, ThinPlateSpline
from ._registry import families, get_family, register_family

for _family in (Affine, Projective, ThinPlateSpline):
    register_family(_family)
del _family

from . import nn, testing  # noqa: E402  (they need the registry filled)

__version__ = "0.1.0"

__all__ = [
    "Affine",
    "Composed",
    "ConvergenceWarning",
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
    "families",
    "get_family",
    "get_max_output_elements",
    "nn",
    "testing",
    "register_family",
    "sample",
    "set_max_output_elements",
    "warp",
]
