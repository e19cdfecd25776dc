"""The built-in transform families, one per module."""

from .affine import Affine
from .projective import Projective
from .tps import ThinPlateSpline

__all__ = ["Affine", "Projective", "ThinPlateSpline"]
