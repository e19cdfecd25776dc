"""warpkit plugin: similarity, rigid and attention transform families (registered by entry point)."""

from .attention import Attention
from .rigid import Rigid
from .similarity import Similarity

__all__ = ["Attention", "Rigid", "Similarity"]
