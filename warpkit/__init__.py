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
from ._modes import Interpolation, Padding
from ._sampler import sample
from ._warp import warp
from .families import Affine, Projective, ThinPlateSpline
from ._registry import families, get_family, register_family

for _family in (Affine, Projective, ThinPlateSpline):
    register_family(_family)
del _family

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
    "register_family",
    "sample",
    "warp",
]
