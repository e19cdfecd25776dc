"""warpkit's compiled CPU sampler: ahead-of-time C++ kernels (``csrc/``) behind a small C ABI, loaded with ctypes.

The dispatch (``warpkit._dispatch``) calls :func:`sample` for CPU float32/float64 work when :func:`available`.
Eager calls go straight to the library through a ``torch.autograd.Function``; under ``torch.compile`` the same
kernels run as ``torch.library`` custom ops with fake implementations (``warpkit::native_sample``), so eager use
never imports ``torch._dynamo``. Double backward (``create_graph=True``) is taken through the reference sampler.
"""

from __future__ import annotations

from . import _abi
from ._ops import sample

__all__ = ["available", "load_error", "sample", "build_info"]


def available() -> bool:
    """Whether the compiled library loaded (cheap after the first call; imports neither numba nor dynamo)."""
    return _abi.library() is not None


def load_error() -> str | None:
    """Why the library is not available (for a one-time warning), or ``None``."""
    return _abi.load_error()


def build_info() -> str | None:
    """Compiler and flags of the loaded library, e.g. ``'GNU 12.2.0 -O3 ... -march=x86-64-v2'``."""
    lib = _abi.library()
    return None if lib is None else lib.wk_build_info().decode()
