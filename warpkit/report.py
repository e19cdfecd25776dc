"""The consistency report: warp a real photograph with every registered family and compare with OpenCV and Kornia.

For each family (plugins included, via :func:`warpkit.families`) and each interpolation x padding mode,
warpkit's warp is compared with

- ``cv2.warpAffine`` / ``cv2.warpPerspective`` when the family has a matrix,
- ``cv2.remap`` on the family's own grid (any family),
- kornia's ``warp_affine`` / ``warp_perspective`` when the family has a matrix and kornia has the padding.

Agreement promised for float32 images in [0, 1]: at most :data:`TOLERANCE` for bilinear and bicubic;
for nearest identical pixels except rare exact ties (at most :data:`NEAREST_MISMATCH_RATE` of them).
OpenCV and scikit-image (for the photograph) are needed; kornia is optional.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from ._base import Transform
from ._errors import ModeError, WarpkitError
from ._modes import Interpolation, Padding
from ._opencv import cv2_options, remap, warp_matrix
from ._registry import families as registered_families
from ._warp import warp

__all__ = [
    "TOLERANCE",
    "NEAREST_MISMATCH_RATE",
    "Row",
    "example_transform",
    "load_image",
    "consistency_report",
    "format_report",
    "run_report",
]

TOLERANCE = 1e-4
NEAREST_MISMATCH_RATE = 1e-3
#: Colour per channel for ``constant`` padding (distinct, so a channel mix-up shows).
FILL = (0.2, 0.5, 0.8)
_IMAGES = ("chelsea", "astronaut", "coffee", "camera")


@dataclasses.dataclass(frozen=True)
class Row:
    """One family x mode: the largest |difference| against each reference (None where it does not apply).

    For nearest, ``mismatch`` is the fraction of pixels that differ from the cv2 references.
    """

    family: str
    interpolation: str
    padding: str
    vs_cv2_warp: float | None
    vs_cv2_remap: float | None
    vs_kornia: float | None
    mismatch: float | None
    passed: bool
    error: str = ""


def load_image(name: str = "chelsea") -> np.ndarray:
    """A photograph shipped with scikit-image as float32 ``(H, W, 3)`` in [0, 1] (no download)."""
    if name not in _IMAGES:
        raise ValueError(f"image: expected one of {', '.join(_IMAGES)}, got {name!r}")
    import skimage.data

    image = getattr(skimage.data, name)().astype(np.float32) / 255
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image)


def example_transform(family: type[Transform], src_size, dst_size, seed: int = 0, noise: float = 0.05) -> Transform:
    """A mild, reproducible transform of ``family``: identity parameters plus seeded noise, else the identity."""
    if family.num_params is None:
        return family.identity()
    params = family.identity_params(1, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    params = params + noise * torch.randn(params.shape, generator=generator, dtype=torch.float64)
    return family.from_params(params, src_size, dst_size, align_corners=False)


def consistency_report(
    image: np.ndarray | None = None, size: tuple[int, int] | None = None, *, names=None, seed: int = 0
) -> list[Row]:
    """Compare every family (or those in ``names``) in every mode; ``image`` ``(H, W, 3)`` float32, ``size`` ``(H, W)``."""
    import cv2  # noqa: F401 - fail early (and clearly, in run_report) when OpenCV is missing

    kornia_transform: Any
    try:
        import kornia.geometry.transform as kornia_transform
    except ImportError:
        kornia_transform = None
    image = load_image() if image is None else np.ascontiguousarray(image, dtype=np.float32)
    src_size = image.shape[:2]
    size = (int(size[0]), int(size[1])) if size is not None else (src_size[0] * 7 // 8, src_size[1] * 7 // 8)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy()).unsqueeze(0)
    rows = []
    for name, family in sorted(registered_families().items()):
        if names and name not in names:
            continue
        family_size = size
        try:
            try:
                transform = example_transform(family, src_size, size, seed)
            except WarpkitError:  # some families (lens models) only map an image onto its own size
                family_size = src_size
                transform = example_transform(family, src_size, src_size, seed)
            grid = transform.grid(family_size)[0].detach().float().numpy()
            matrix = transform.matrix[0].detach().double().numpy() if family.has_matrix else None
        except Exception as exc:  # a broken plugin family is a failed row, not a crashed report
            rows.append(Row(name, "-", "-", None, None, None, None, False, f"{type(exc).__name__}: {exc}"))
            continue
        for interpolation in Interpolation:
            for padding in Padding:
                rows.append(
                    _compare(
                        name,
                        tensor,
                        image,
                        transform,
                        grid,
                        matrix,
                        family_size,
                        interpolation,
                        padding,
                        kornia_transform,
                    )
                )
    return rows


def _compare(name, tensor, image, transform, grid, matrix, size, interpolation, padding, kornia_transform) -> Row:
    mode, pad = interpolation.value, padding.value
    try:
        ours = (
            warp(tensor, transform, size, interpolation=mode, padding=pad, fill=FILL)[0]
            .permute(1, 2, 0)
            .double()
            .numpy()
        )
    except Exception as exc:
        return Row(name, mode, pad, None, None, None, None, False, f"{type(exc).__name__}: {exc}")
    options = cv2_options(mode, pad, FILL, channels=len(FILL))
    is_affine = matrix is not None and np.array_equal(matrix[2], [0.0, 0.0, 1.0])
    try:
        cv2_refs = [remap(image, grid, options)]
        if matrix is not None:
            cv2_refs.insert(0, warp_matrix(image, matrix, size, options)[0])
    except ModeError as exc:  # inputs on which OpenCV would not return: skipped, not a failure of warpkit
        return Row(name, mode, pad, None, None, None, None, True, f"skipped: {exc}")
    diffs = [np.abs(ours - ref).max() for ref in cv2_refs]
    vs_warp, vs_remap = (diffs[0], diffs[1]) if matrix is not None else (None, diffs[0])
    vs_kornia = None
    kornia_ref = _kornia(tensor, matrix, is_affine, size, mode, pad, kornia_transform)
    if kornia_ref is not None:
        vs_kornia = float(np.abs(ours - kornia_ref).max())
    if mode == "nearest":
        mismatch = max(_mismatch(ours, ref) for ref in cv2_refs)
        kornia_ok = kornia_ref is None or _mismatch(ours, kornia_ref) <= NEAREST_MISMATCH_RATE
        passed = mismatch <= NEAREST_MISMATCH_RATE and kornia_ok
    else:
        mismatch = None
        passed = all(d <= TOLERANCE for d in diffs + ([vs_kornia] if vs_kornia is not None else []))
    return Row(name, mode, pad, _float(vs_warp), _float(vs_remap), vs_kornia, mismatch, bool(passed))


# our padding -> kornia's name; reflect / reflect101 are kornia's "reflection" at align_corners False / True
_KORNIA_PADDING = {
    "zeros": ("zeros", True),
    "constant": ("fill", True),
    "replicate": ("border", True),
    "reflect": ("reflection", False),
    "reflect101": ("reflection", True),
}


def _kornia(tensor, matrix, is_affine, size, mode, pad, kornia_transform):
    if kornia_transform is None or matrix is None or pad not in _KORNIA_PADDING:
        return None
    padding_mode, align_corners = _KORNIA_PADDING[pad]
    m = torch.from_numpy(matrix).float().unsqueeze(0)
    fill = torch.tensor(FILL)
    if is_affine:
        out = kornia_transform.warp_affine(
            tensor, m[:, :2], size, mode=mode, padding_mode=padding_mode, align_corners=align_corners, fill_value=fill
        )
    else:
        out = kornia_transform.warp_perspective(
            tensor, m, size, mode=mode, padding_mode=padding_mode, align_corners=align_corners, fill_value=fill
        )
    return out[0].permute(1, 2, 0).double().numpy()


def _mismatch(ours: np.ndarray, reference: np.ndarray) -> float:
    return float((np.abs(ours - reference) > 1e-6).any(axis=-1).mean())


def _float(value) -> float | None:
    return None if value is None else float(value)


def format_report(rows: list[Row]) -> str:
    """The rows as a text table, then the largest difference per interpolation and reference."""

    def cell(value):
        return "-" if value is None else f"{value:.2e}"

    header = f"{'family':<12} {'interp':<9} {'padding':<11} {'cv2 warp':>9} {'cv2 remap':>9} {'kornia':>9} {'nearest':>9}  result"
    lines = [header, "-" * len(header)]
    for r in rows:
        mismatch = "-" if r.mismatch is None else f"{r.mismatch:.3%}"
        if r.passed:
            result = "skip" + f" ({r.error[len('skipped: ') :]})" if r.error.startswith("skipped: ") else "pass"
        else:
            result = "FAIL" + (f" ({r.error})" if r.error else "")
        lines.append(
            f"{r.family:<12} {r.interpolation:<9} {r.padding:<11} {cell(r.vs_cv2_warp):>9} {cell(r.vs_cv2_remap):>9} "
            f"{cell(r.vs_kornia):>9} {mismatch:>9}  {result}"
        )
    lines += ["", "largest |difference| per interpolation (all families and paddings):"]
    for mode in Interpolation:
        picked = [r for r in rows if r.interpolation == mode.value]
        worst = {
            "cv2": max((v for r in picked for v in (r.vs_cv2_warp, r.vs_cv2_remap) if v is not None), default=None),
            "kornia": max((r.vs_kornia for r in picked if r.vs_kornia is not None), default=None),
        }
        extra = ""
        if mode is Interpolation.NEAREST:
            extra = f", differing pixels {max((r.mismatch for r in picked if r.mismatch is not None), default=0):.3%}"
        lines.append(f"  {mode.value:<9} vs cv2 {cell(worst['cv2'])}, vs kornia {cell(worst['kornia'])}{extra}")
    failed = sum(not r.passed for r in rows)
    lines.append(
        f"tolerance {TOLERANCE:g} (bilinear, bicubic); nearest: identical except <= {NEAREST_MISMATCH_RATE:.1%} exact ties"
    )
    lines.append(f"{len(rows) - failed} of {len(rows)} comparisons pass" + ("" if not failed else f", {failed} FAIL"))
    return "\n".join(lines)


def run_report(image_name: str = "chelsea", size=None, names=None, seed: int = 0) -> tuple[list[Row], str, float]:
    """Run and format the report; returns ``(rows, text, seconds)``."""
    start = time.perf_counter()
    image = load_image(image_name)
    rows = consistency_report(image, size, names=names, seed=seed)
    return rows, format_report(rows), time.perf_counter() - start
