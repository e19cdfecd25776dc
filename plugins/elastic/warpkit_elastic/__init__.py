"""warpkit plugin: elastic displacement fields (registered by entry point as ``elastic``)."""

from .elastic import Elastic

__all__ = ["Elastic"]
