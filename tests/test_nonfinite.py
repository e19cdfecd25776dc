"""Non-finite sample coordinates read as out of bounds: ``fill`` with ``constant``, 0 in every other mode.

Checked for every interpolation, padding and sampler backend; finite samples next to them are compared
with ``cv2.remap`` so that a NaN neighbour cannot leak into them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import warpkit as wk
from warpkit._dispatch import installed_backends
from warpkit._modes import Interpolation, Padding

INTERPOLATIONS = list(Interpolation)
PADDINGS = list(Padding)
BACKENDS = installed_backends()
FILL = (0.25, 0.5, 0.75)
BAD = [float("nan"), float("inf"), float("-inf")]

_CV_INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_CV_BORDER = {
    "zeros": cv2.BORDER_CONSTANT,
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "reflect101": cv2.BORDER_REFLECT_101,
    "wrap": cv2.BORDER_WRAP,
}


def _run_backend(backend, image, grid, mode, pad, fill):
    with wk.backend(backend):
        out = wk.sample(image, grid, interpolation=mode, padding=pad, fill=fill)
    assert wk.last_backend() == backend
    return out


def _grid_with_bad_points(height=5, width=6, seed=0):
    """``(1, 4, 9, 2)`` grid: row 0 finite, rows 1-3 have NaN/inf/-inf in x, y or both."""
    rng = np.random.default_rng(seed)
    # finite points away from exact .5 ties (nearest) and well inside cv2's cubic clamp
    finite = rng.uniform(-2.0, [width + 1.0, height + 1.0], size=(9, 2))
    finite = np.where(np.abs(finite % 1 - 0.5) < 1e-3, finite + 0.01, finite)
    grid = np.tile(finite, (4, 1, 1))
    for row, bad in enumerate(BAD, start=1):
        grid[row, 0::3, 0] = bad
        grid[row, 1::3, 1] = bad
        grid[row, 2::3, :] = bad
    return torch.from_numpy(grid[None]).float()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", PADDINGS, ids=[p.value for p in PADDINGS])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS, ids=[m.value for m in INTERPOLATIONS])
def test_nonfinite_coordinates_read_padding_value(backend, interpolation, padding):
    image = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(1))
    grid = _grid_with_bad_points()
    out = _run_backend(backend, image, grid, interpolation, padding, FILL)

    assert torch.isfinite(out).all()
    expected_outside = torch.tensor(FILL if padding is Padding.CONSTANT else (0.0, 0.0, 0.0))
    assert torch.equal(out[0, :, 1:], expected_outside.reshape(3, 1, 1).expand(3, 3, 9))

    # the finite row is what cv2.remap reads there
    hwc = image[0].permute(1, 2, 0).numpy()
    border_value = FILL + (0.0,) if padding is Padding.CONSTANT else (0.0,) * 4
    map_x, map_y = grid[0, :1, :, 0].numpy(), grid[0, :1, :, 1].numpy()
    reference = cv2.remap(
        hwc,
        map_x,
        map_y,
        _CV_INTERPOLATION[interpolation.value],
        borderMode=_CV_BORDER[padding.value],
        borderValue=border_value,
    )
    np.testing.assert_allclose(out[0, :, 0].permute(1, 0).numpy(), reference[0], atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS, ids=[m.value for m in INTERPOLATIONS])
def test_nonfinite_coordinates_give_zero_gradient(backend, interpolation, monkeypatch):
    monkeypatch.setenv("WARPKIT_BACKEND", "reference" if backend == "reference" else "auto")
    image = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    grid = _grid_with_bad_points().double().requires_grad_(True)
    out = wk.sample(image, grid, interpolation=interpolation, padding="reflect")
    (out * torch.rand_like(out)).sum().backward()
    assert torch.isfinite(image.grad).all()
    if grid.grad is None:  # nearest: the output does not depend on the grid at all
        assert interpolation is Interpolation.NEAREST
        return
    assert torch.isfinite(grid.grad).all()
    bad_points = ~torch.isfinite(grid.detach()).all(dim=-1)
    assert (grid.grad[bad_points] == 0).all()


def _horizon_projective() -> wk.Projective:
    """A homography whose inverse has last row [0.5, 0, -2]: destination column x = 4 maps to infinity.

    Entries are powers of two so that inverting twice is exact and w is exactly 0 there.
    """
    inverse = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, -2.0]], dtype=torch.float64)
    return wk.Projective(torch.linalg.inv(inverse))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS, ids=[m.value for m in INTERPOLATIONS])
def test_warp_through_the_horizon(backend, interpolation, monkeypatch):
    """Public ``warp`` (grid path and the fast fused matrix path): the horizon column reads ``fill``."""
    monkeypatch.setenv("WARPKIT_BACKEND", "reference" if backend == "reference" else "auto")
    transform = _horizon_projective()
    grid = transform.grid((6, 9))
    assert not torch.isfinite(grid[0, :, 4]).any()  # the premise: column 4 is at infinity
    image = torch.rand(1, 3, 6, 9)
    out = wk.warp(image, transform, (6, 9), interpolation=interpolation, padding="constant", fill=FILL)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, :, :, 4], torch.tensor(FILL).reshape(3, 1).expand(3, 6))


def test_sample_public_api_matches_backends():
    """``wk.sample`` itself (whatever backend it dispatches to) gives the padding value."""
    image = torch.rand(3, 5, 6)
    out = wk.sample(image, _grid_with_bad_points()[0], interpolation="bicubic", padding="wrap")
    assert torch.equal(out[:, 1:], torch.zeros(3, 3, 9))
