"""The same warp done by OpenCV: what ``warpkit report``, ``warpkit warp --compare-opencv`` and the
conformance kit compare with. OpenCV is imported lazily (it is a test / command-line dependency).

Convention: images are ``(H, W)`` or ``(H, W, C)`` numpy arrays; matrices ``(3, 3)`` source -> destination
(``cv2.warpAffine``'s ``M`` with a last row); grids ``(H_out, W_out, 2)`` source pixel points.
"""

from __future__ import annotations

import numpy as np

from ._errors import ModeError
from ._modes import Interpolation, Padding, parse_mode

__all__ = ["cv2_options", "warp_matrix", "remap", "check_opencv_returns"]

_INTERPOLATION = {"nearest": "INTER_NEAREST", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC"}
_BORDER = {
    "zeros": "BORDER_CONSTANT",
    "constant": "BORDER_CONSTANT",
    "replicate": "BORDER_REPLICATE",
    "reflect": "BORDER_REFLECT",
    "reflect101": "BORDER_REFLECT_101",
    "wrap": "BORDER_WRAP",
}


def cv2_options(interpolation="bilinear", padding="zeros", fill=0.0, channels: int = 1) -> dict:
    """``flags``, ``borderMode`` and ``borderValue`` for warpkit's modes.

    ``fill`` is a number or one value per channel; ``borderValue`` is always a full 4-tuple, since a bare
    float fills channel 0 only (OpenCV turns a bare float into (v, 0, 0, 0)).
    """
    import cv2

    mode = parse_mode(Interpolation, interpolation, "interpolation")
    pad = parse_mode(Padding, padding, "padding")
    values = [0.0] * 4
    if pad is Padding.CONSTANT:
        values = [float(v) for v in np.broadcast_to(np.asarray(fill, dtype=np.float64), (channels,))][:4]
    return {
        "flags": getattr(cv2, _INTERPOLATION[mode.value]),
        "borderMode": getattr(cv2, _BORDER[pad.value]),
        "borderValue": tuple(values) + (0.0,) * (4 - len(values)),
    }


#: Budget for OpenCV's reflect loop, in steps of one image size summed over the output (~0.3 s of CPU).
REFLECT_STEPS_LIMIT = 1e8


def check_opencv_returns(
    image: np.ndarray, options: dict, grid: np.ndarray | None = None, argument: str = "grid"
) -> None:
    """Raise :class:`ModeError` where OpenCV 5.0 would never return (or take minutes); the callers skip there.

    - ``INTER_CUBIC`` with ``BORDER_REFLECT_101`` on an image with a side of 1 pixel loops forever
      (``warpAffine``, ``warpPerspective``, ``remap``).
    - ``INTER_NEAREST`` / ``INTER_LINEAR`` with ``BORDER_REFLECT`` / ``BORDER_REFLECT_101`` fold a
      coordinate back one image size per step, so the time grows with how far outside it is: NaN and
      infinity (read as about -2**31) or 1e30 take seconds to forever per pixel. ``grid`` (the source points,
      ``(H_out, W_out, 2)``, as OpenCV will read them) is refused when the steps add up past
      :data:`REFLECT_STEPS_LIMIT`. (Cubic clamps its coordinates first and has no such loop.)
    """
    import cv2

    cubic_reflect101 = options["flags"] == cv2.INTER_CUBIC and options["borderMode"] == cv2.BORDER_REFLECT_101
    if cubic_reflect101 and min(image.shape[:2]) == 1:
        raise ModeError(
            f"padding: OpenCV never returns from bicubic with reflect101 on an image with a side of 1 "
            f"pixel; expected an image of at least 2x2, got {image.shape[0]}x{image.shape[1]}"
        )
    folding = options["borderMode"] in (cv2.BORDER_REFLECT, cv2.BORDER_REFLECT_101)
    if grid is None or not folding or options["flags"] not in (cv2.INTER_NEAREST, cv2.INTER_LINEAR):
        return
    points = np.asarray(grid, dtype=np.float64).reshape(-1, 2)
    bad = ~np.isfinite(points).all(axis=1)
    mode = "nearest" if options["flags"] == cv2.INTER_NEAREST else "bilinear"
    border = "reflect" if options["borderMode"] == cv2.BORDER_REFLECT else "reflect101"
    if bad.any():
        raise ModeError(
            f"{argument}: OpenCV's {mode} with {border} does not return at NaN or infinite coordinates; expected "
            f"finite ones, got {int(bad.sum())} non-finite point(s)"
        )
    height, width = image.shape[:2]
    steps = (
        np.maximum(np.abs(points[:, 0]) / max(width, 1) - 1, 0).sum()
        + np.maximum(np.abs(points[:, 1]) / max(height, 1) - 1, 0).sum()
    )
    if steps > REFLECT_STEPS_LIMIT:
        raise ModeError(
            f"{argument}: OpenCV's {mode} with {border} takes time in proportion to how far outside the image a point "
            f"is; expected points within about {REFLECT_STEPS_LIMIT / max(len(points), 1):.3g} image sizes, got "
            f"|coordinates| up to {np.abs(points).max():.3g} ({steps:.3g} steps)"
        )


def warp_matrix(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], options: dict) -> tuple[np.ndarray, str]:
    """``cv2.warpAffine`` when ``matrix``'s last row is ``[0, 0, 1]``, else ``cv2.warpPerspective``, to
    ``size = (H_out, W_out)``; returns the result and the function's name."""
    import cv2

    check_opencv_returns(image, options, _matrix_grid(matrix, size), "matrix")
    dsize = (size[1], size[0])
    if np.array_equal(matrix[2], [0.0, 0.0, 1.0]):
        return cv2.warpAffine(image, np.ascontiguousarray(matrix[:2]), dsize, **options), "cv2.warpAffine"
    return cv2.warpPerspective(image, matrix, dsize, **options), "cv2.warpPerspective"


def remap(image: np.ndarray, grid: np.ndarray, options: dict) -> np.ndarray:
    """``cv2.remap`` of ``image`` at the ``(H_out, W_out, 2)`` source points ``grid`` (float32 maps)."""
    import cv2

    grid = np.asarray(grid, dtype=np.float32)
    check_opencv_returns(image, options, grid)
    return cv2.remap(
        image,
        np.ascontiguousarray(grid[..., 0]),
        np.ascontiguousarray(grid[..., 1]),
        options["flags"],
        borderMode=options["borderMode"],
        borderValue=options["borderValue"],
    )


def _matrix_grid(matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H_out, W_out, 2)`` source points of the destination pixels for a ``(3, 3)`` source -> destination matrix."""
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float64)
    with np.errstate(all="ignore"):
        inverse = np.linalg.pinv(np.asarray(matrix, dtype=np.float64))
        h = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ inverse.T
        return h[..., :2] / h[..., 2:]
