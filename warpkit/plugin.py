"""The public API for plugin authors: everything a transform family outside warpkit needs, by stable names.

A plugin imports from here (and from ``warpkit``), never from warpkit's private modules::

    from warpkit.plugin import Transform, ShapeError, as_float_tensor, check_sizes, correspondences

- the base class and its vocabulary: :class:`Transform`, :class:`Direction`, :func:`register_family`;
- errors: :class:`WarpkitError` and the subclasses a family raises, :class:`ConvergenceWarning`;
- argument checks that raise those errors with the argument's name (``as_float_tensor``, ``check_size``...);
- matrix and frame helpers shared by the built-in families (``checked_inverse``, ``correspondences``,
  ``apply_matrix``, ``normalization_matrix``, ``theta_to_matrix``...);
- the grid converters between torch's normalised frame and pixels;
- the conformance kit's builders of example transforms (``example``, ``example_params``), which a family
  can customise with ``example`` / ``example_params`` classmethods of its own.

See docs/plugins.md for the contract each method keeps and the checks the kit runs.
"""

from __future__ import annotations

from ._base import Direction, Transform
from ._checks import (
    as_float_tensor,
    batch_points,
    broadcast_batch,
    check_batch_size,
    check_dtype,
    check_floating,
    check_output_size,
    check_same_device,
    check_size,
    check_sizes,
)
from ._coords import apply_matrix, matrix_to_theta, normalization_matrix, pixel_grid, theta_grid, theta_to_matrix
from ._errors import (
    ConvergenceWarning,
    DegenerateInputError,
    DeviceError,
    DTypeError,
    ModeError,
    ShapeError,
    SingularMatrixError,
    SizeLimitError,
    WarpkitError,
)
from ._grids import normalized_to_pixel, pixel_to_normalized
from ._registry import register_family
from .families._matrix import check_spread, checked_inverse, correspondences, point_normalizer
from .testing._kit import example, example_params

__all__ = [
    # the contract
    "Transform",
    "Direction",
    "register_family",
    # errors
    "WarpkitError",
    "ShapeError",
    "DTypeError",
    "DeviceError",
    "ModeError",
    "SingularMatrixError",
    "DegenerateInputError",
    "SizeLimitError",
    "ConvergenceWarning",
    # argument checks
    "as_float_tensor",
    "check_floating",
    "check_size",
    "check_sizes",
    "check_batch_size",
    "check_dtype",
    "check_same_device",
    "batch_points",
    "broadcast_batch",
    "check_output_size",
    # matrices and frames
    "apply_matrix",
    "checked_inverse",
    "check_spread",
    "correspondences",
    "point_normalizer",
    "pixel_grid",
    "normalization_matrix",
    "theta_to_matrix",
    "matrix_to_theta",
    "theta_grid",
    "normalized_to_pixel",
    "pixel_to_normalized",
    # the kit's example builders
    "example",
    "example_params",
]
