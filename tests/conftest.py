"""Shared fixtures and helpers for the cross-library tests.

Images are numpy ``(H, W, C)`` float32 in [0, 1] on the OpenCV side and torch ``(1, C, H, W)`` on ours.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

__all__ = [
    "INTERPOLATIONS",
    "PADDINGS",
    "CV2_INTERP",
    "CV2_BORDER",
    "FILL",
    "TOLERANCE",
    "NEAREST_MISMATCH_RATE",
    "real_image",
    "to_torch",
    "to_numpy",
    "cv2_border_value",
    "assert_matches",
]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
PADDINGS = ("zeros", "constant", "replicate", "reflect", "reflect101", "wrap")
CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
CV2_BORDER = {
    "zeros": cv2.BORDER_CONSTANT,
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "reflect101": cv2.BORDER_REFLECT_101,
    "wrap": cv2.BORDER_WRAP,
}
#: A per-channel fill for ``constant`` (distinct values, so a channel mix-up shows).
FILL = (0.2, 0.5, 0.8)
#: Promised agreement with cv2 / kornia for bilinear and bicubic on float32 images in [0, 1].
TOLERANCE = 1e-4
#: Nearest may round an exact .5 tie either way; allow this fraction of differing pixels.
NEAREST_MISMATCH_RATE = 1e-3


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: optional, slower checks (still run by default)")
    # Test tensors are tiny: torch's thread pool only adds overhead, and on a busy 2-core CI machine
    # it made small ops 10-100x slower (measured: TPS grid 0.015 s with 1 thread, 0.1-1.3 s with 2).
    torch.set_num_threads(1)


def real_image(size: tuple[int, int] | None = None) -> np.ndarray:
    """skimage's ``chelsea`` (300 x 451 RGB, shipped with the package) as float32 ``(H, W, 3)`` in [0, 1].

    ``size = (H, W)`` takes a centred crop (real texture and edges, small enough for fast tests).
    """
    import skimage.data

    image = skimage.data.chelsea().astype(np.float32) / 255
    if size is not None:
        h, w = size
        top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        image = image[top : top + h, left : left + w]
    return np.ascontiguousarray(image)


@pytest.fixture(scope="session")
def image_np() -> np.ndarray:
    """A ``(48, 64, 3)`` float32 crop of a real photograph."""
    return real_image((48, 64))


@pytest.fixture(scope="session")
def image(image_np) -> torch.Tensor:
    """The same crop as ``(1, 3, 48, 64)`` float32."""
    return to_torch(image_np)


def to_torch(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(H, W, C)`` or ``(H, W)`` numpy into ``(1, C, H, W)`` torch."""
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).unsqueeze(0).to(dtype)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` torch into ``(H, W, C)`` float64 numpy."""
    if tensor.ndim == 4:
        (tensor,) = tensor
    return tensor.detach().double().permute(1, 2, 0).numpy()


def cv2_border_value(padding: str, channels: int = 3) -> tuple[float, ...]:
    """cv2's ``borderValue`` for our ``fill``: a full tuple, since a bare float fills channel 0 only."""
    values = FILL[:channels] if padding == "constant" else (0.0,) * channels
    return tuple(values) + (0.0,) * (4 - channels)


def assert_matches(ours: np.ndarray, reference: np.ndarray, interpolation: str, tolerance: float = TOLERANCE) -> float:
    """Assert agreement with a reference image; return the largest absolute difference.

    Nearest must give identical pixels except at rare exact .5 ties (at most NEAREST_MISMATCH_RATE of pixels).
    """
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    diff = np.abs(np.asarray(ours, np.float64) - np.asarray(reference, np.float64))
    if interpolation == "nearest":
        differing = (diff.reshape(diff.shape[0], diff.shape[1], -1) > 1e-6).any(-1).mean()
        assert differing <= NEAREST_MISMATCH_RATE, f"{differing:.4%} of pixels differ (nearest)"
    else:
        assert diff.max() <= tolerance, f"max |diff| {diff.max():.3g} > {tolerance:g}"
    return float(diff.max())
