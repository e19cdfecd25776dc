"""The one sampler door: every resampling in warpkit passes :func:`resample`, which picks a backend.

The backends, in the order ``auto`` tries them (the first that accepts a call runs it):

- ``native``: warpkit's compiled C++ CPU kernels (CPU tensors, float32/float64; matrix coordinates computed
  inside the kernel; deterministic backward). Absent when the package was built without a compiler.
- ``torch``: torch's own ``grid_sample`` kernel with every warpkit mode emulated exactly; any device, any
  floating dtype, double backward, gradients for ``fill``, tracing, ``torch.compile``.
- ``reference``: the pure-torch gather sampler that defines the results; it runs what the others decline:
  deterministic backward on CUDA (``grid_sample``'s CUDA backward uses atomics) and empty images.

``WARPKIT_BACKEND=auto|native|torch|reference`` or ``with warpkit.backend("torch"):`` pins one (the
context manager wins); a pinned backend that cannot run a call raises :class:`BackendError` saying why.
:func:`last_backend` names the backend that ran the calling thread's last resampling.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator

import torch

from ._errors import BackendError
from ._modes import Interpolation, Padding
from ._reference import reference_sample
from ._torch_backend import matrix_grid, torch_sample

__all__ = ["Call", "resample", "backend", "backends", "installed_backends", "last_backend", "BACKEND_NAMES"]


@dataclasses.dataclass(frozen=True)
class Call:
    """One validated resampling call, as every backend receives it.

    ``image`` ``(Bi, C, H, W)`` floating; ``coords`` a ``(Bg, H_out, W_out, 2)`` pixel grid or, with
    ``use_matrix``, ``(Bg, 3, 3)`` destination -> source matrices (``affine``: last row ``[0, 0, 1]``);
    batch 1 broadcasts; ``fill`` ``(1 or B, C, 1, 1)`` for ``constant``, else None; ``fill_finite`` whether
    ``fill`` is known to be finite (None: unknown).
    """

    image: torch.Tensor
    coords: torch.Tensor
    use_matrix: bool
    affine: bool
    size: tuple[int, int]
    mode: Interpolation
    pad: Padding
    fill: torch.Tensor | None
    fill_finite: bool | None = None


@dataclasses.dataclass(frozen=True)
class _Backend:
    name: str
    summary: str
    declines: Callable[[Call], str | None]  # why it cannot run a call, or None
    run: Callable[[Call], torch.Tensor]


def _fill_or_zeros(call: Call) -> torch.Tensor:
    if call.fill is not None:
        return call.fill
    image = call.image
    if image.device.type != "cpu":
        return torch.zeros((1, image.shape[1], 1, 1), dtype=image.dtype, device=image.device)
    key = (image.shape[1], image.dtype)
    zeros = _ZEROS.get(key)
    if zeros is None:
        zeros = _ZEROS[key] = torch.zeros((1, image.shape[1], 1, 1), dtype=image.dtype)
    return zeros


_ZEROS: dict[tuple, torch.Tensor] = {}  # read-only zero fills of the CPU, one per channel count and dtype


def _run_reference(call: Call) -> torch.Tensor:
    grid = matrix_grid(call.coords, call.size, call.affine) if call.use_matrix else call.coords
    return reference_sample(call.image, grid, call.mode, call.pad, _fill_or_zeros(call))


def _run_torch(call: Call) -> torch.Tensor:
    return torch_sample(
        call.image,
        call.coords,
        call.mode,
        call.pad,
        _fill_or_zeros(call),
        use_matrix=call.use_matrix,
        size=call.size,
        affine=call.affine,
        fill_finite=call.fill_finite,
    )


def _torch_declines(call: Call) -> str | None:
    if (
        call.image.device.type == "cuda"
        and torch.are_deterministic_algorithms_enabled()
        and (call.image.requires_grad or call.coords.requires_grad)
    ):
        return "grid_sample's CUDA backward accumulates with atomics, and deterministic algorithms are on"
    return None


def _native_declines(call: Call) -> str | None:
    # torch.compile cannot trace the loading (a lock, a warning): it uses the kernels only once eager code has
    native = (_NATIVE[0] if _NATIVE else None) if torch.compiler.is_compiling() else _native_module()
    if native is None:
        return "the compiled CPU kernels are not installed"
    if call.image.device.type != "cpu" or call.coords.device.type != "cpu":
        return "the compiled kernels run on the CPU only"
    if call.fill is not None and call.fill.requires_grad:
        return "the compiled kernels give no gradient for fill"
    if torch.compiler.is_compiling():
        return None  # dynamo's tensors: the kernels' custom ops and their fake implementations serve them
    if torch.jit.is_tracing() or torch.jit.is_scripting() or _onnx_exporting():
        return "tracing and ONNX export record torch operations"
    if _is_functorch_wrapped(call.image) or _is_functorch_wrapped(call.coords):
        return "torch.func transforms (vmap, grad) need torch operations"
    return None


def _run_native(call: Call) -> torch.Tensor:
    # native.sample computes float16/bfloat16 in float32 and casts back; points are taken in that precision
    work = torch.promote_types(call.image.dtype, torch.float32)
    coords = call.coords if call.coords.dtype == work else call.coords.to(work)
    return _NATIVE[0].sample(
        call.image, coords, call.mode, call.pad, _fill_or_zeros(call), use_matrix=call.use_matrix, size=call.size
    )


_NATIVE: list = []  # [module or None], filled on first use
_NATIVE_LOCK = threading.Lock()


def _native_module():
    """The compiled kernels' module, or None (with one warning saying why) when they cannot load."""
    if not _NATIVE:
        with _NATIVE_LOCK:
            if not _NATIVE:
                try:
                    from . import _native
                except ImportError:
                    _native = None
                if _native is not None and not _native.available():
                    if os.environ.get("WARPKIT_BACKEND", "").strip().lower() != "torch":
                        warnings.warn(
                            f"warpkit: the compiled CPU kernels are not available ({_native.load_error()}); "
                            "CPU calls use the torch backend",
                            RuntimeWarning,
                            stacklevel=4,
                        )
                    _native = None
                _NATIVE.append(_native)
    return _NATIVE[0]


def _onnx_exporting() -> bool:
    # torch.onnx is imported only by an export: asking it otherwise costs a 300 ms import on the first call
    return "torch.onnx" in sys.modules and torch.onnx.is_in_onnx_export()


def _is_functorch_wrapped(tensor: torch.Tensor) -> bool:
    # No public test exists (torch 2.13); without it, assume plain tensors.
    check = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    return bool(check(tensor)) if check is not None else False


_BACKENDS = {
    b.name: b
    for b in (
        _Backend(
            "native",
            "compiled C++ CPU kernels (float16/bfloat16 computed in float32), deterministic backward",
            _native_declines,
            _run_native,
        ),
        _Backend(
            "torch",
            "torch's grid_sample with exact emulation of every mode: any device and dtype",
            _torch_declines,
            _run_torch,
        ),
        _Backend(
            "reference",
            "pure-torch gather: the oracle; deterministic on every device",
            lambda call: None,
            _run_reference,
        ),
    )
}
BACKEND_NAMES = ("auto", *_BACKENDS)
_PINNED: contextvars.ContextVar[str | None] = contextvars.ContextVar("warpkit_backend", default=None)
_LAST = threading.local()


def _parse_backend(name: object, argument: str) -> str:
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in BACKEND_NAMES:
        raise BackendError(f"{argument}: expected one of {', '.join(map(repr, BACKEND_NAMES))}, got {name!r}")
    return key


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Pin the sampler backend inside a ``with`` block: ``"auto"``, ``"native"``, ``"torch"`` or ``"reference"``.

    Overrides ``WARPKIT_BACKEND``; applies to the current thread (and asyncio task).
    """
    token = _PINNED.set(_parse_backend(name, "name"))
    try:
        yield
    finally:
        _PINNED.reset(token)


def backends() -> dict[str, str]:
    """The backends, in the order ``auto`` tries them, each with what it does and where it runs."""
    out = {}
    for name, b in _BACKENDS.items():
        missing = name == "native" and _native_module() is None
        out[name] = b.summary + (" (not installed)" if missing else "")
    return out


def installed_backends() -> list[str]:
    """Names of the backends that can run here (``native`` only when its kernels loaded)."""
    return [name for name in _BACKENDS if name != "native" or _native_module() is not None]


def last_backend() -> str | None:
    """The backend that ran this thread's last resampling (None before the first)."""
    return getattr(_LAST, "name", None)


def _pinned() -> str:
    name = _PINNED.get()
    if name is not None:
        return name
    raw = os.environ.get("WARPKIT_BACKEND")
    return "auto" if raw is None or not raw.strip() else _parse_backend(raw, "WARPKIT_BACKEND")


def resample(call: Call) -> torch.Tensor:
    """Run ``call`` on the pinned backend, or on the first that accepts it. Returns ``(B, C, H_out, W_out)``.

    Under ``torch.compile`` the choice is automatic (dynamo cannot trace context variables or thread-locals)
    and is made once, when the graph is traced.
    """
    compiling = torch.compiler.is_compiling()
    choice = "auto" if compiling else _pinned()
    image = call.image
    if image.shape[0] == 0 or image.shape[2] == 0 or image.shape[3] == 0 or 0 in call.size or call.coords.shape[0] == 0:
        chosen = _BACKENDS["reference"]  # nothing to interpolate: every backend would give the same
    elif choice == "auto":
        chosen = next(b for b in _BACKENDS.values() if b.declines(call) is None)
    else:
        chosen = _BACKENDS[choice]
        reason = chosen.declines(call)
        if reason is not None:
            raise BackendError(f"backend: the pinned backend {choice!r} cannot run this call: {reason}")
    if not compiling:
        _LAST.name = chosen.name
    return chosen.run(call)
