"""The errors warpkit raises on purpose. Every one derives from :class:`WarpkitError`."""

from __future__ import annotations

import numpy as np

__all__ = [
    "WarpkitError",
    "ShapeError",
    "DTypeError",
    "DeviceError",
    "ModeError",
    "SingularMatrixError",
    "DegenerateInputError",
    "SizeLimitError",
    "UnknownFamilyError",
    "PluginLoadError",
    "BackendError",
    "ConvergenceWarning",
]


class WarpkitError(Exception):
    """Root of every error warpkit raises on purpose."""


class ShapeError(WarpkitError, ValueError):
    """A tensor has the wrong rank, shape or batch size."""


class DTypeError(WarpkitError, TypeError):
    """A tensor has a dtype warpkit cannot work with (integer or complex image, ...)."""


class DeviceError(WarpkitError, ValueError):
    """Tensors that must live together are on different devices."""


class ModeError(WarpkitError, ValueError):
    """An unknown interpolation or padding name; the message lists the valid ones."""


class SingularMatrixError(WarpkitError, np.linalg.LinAlgError):
    """A matrix that must be inverted is singular or not finite."""


class DegenerateInputError(WarpkitError, ValueError):
    """Too few, duplicate or collinear points for an estimate or a fit."""


class SizeLimitError(WarpkitError, ValueError):
    """An output would exceed the configured size limit; refused before allocating."""


class UnknownFamilyError(WarpkitError, KeyError):
    """No transform family is registered under that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginLoadError(WarpkitError, ImportError):
    """A plugin distribution failed to import; chained to the original exception."""


class BackendError(WarpkitError, ValueError):
    """An unknown sampler backend name, or a pinned backend that cannot run the call."""


class ConvergenceWarning(UserWarning):
    """An iterative inverse stopped before reaching its tolerance."""
