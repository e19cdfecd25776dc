"""warpkit plugin: Brown-Conrady lens distortion (registered by entry point as ``lens``)."""

from .lens import LensDistortion

__all__ = ["LensDistortion"]
