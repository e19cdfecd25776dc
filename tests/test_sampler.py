"""``wk.sample`` against ``cv2.remap`` and an independent float64 brute force."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from conftest import (
    CV2_BORDER,
    CV2_INTERP,
    FILL,
    INTERPOLATIONS,
    PADDINGS,
    assert_matches,
    cv2_border_value,
    real_image,
    to_numpy,
    to_torch,
)

import warpkit as wk

OUT_SIZE = (40, 56)  # differs from the (48, 64) input on purpose


def random_grid(out_size, in_size, seed=0, margin=0.3) -> np.ndarray:
    """``(H_out, W_out, 2)`` float32 source points covering the image and ``margin`` of it outside."""
    rng = np.random.default_rng(seed)
    h, w = in_size
    x = rng.uniform(-margin * w, (1 + margin) * w, out_size)
    y = rng.uniform(-margin * h, (1 + margin) * h, out_size)
    return np.stack([x, y], axis=-1).astype(np.float32)


def cv2_remap(image_np, grid_np, interpolation, padding, channels=3):
    out = cv2.remap(
        image_np,
        np.ascontiguousarray(grid_np[..., 0]),
        np.ascontiguousarray(grid_np[..., 1]),
        CV2_INTERP[interpolation],
        borderMode=CV2_BORDER[padding],
        borderValue=cv2_border_value(padding, channels),
    )
    return out.reshape(out.shape[0], out.shape[1], -1)


def fill_for(padding):
    return FILL if padding == "constant" else 0.0


# --- against cv2.remap ------------------------------------------------------------------------


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matches_cv2_remap(image_np, image, interpolation, padding):
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2])
    ours = wk.sample(
        image, torch.from_numpy(grid_np)[None], interpolation=interpolation, padding=padding, fill=fill_for(padding)
    )
    assert ours.shape == (1, 3, *OUT_SIZE)
    assert_matches(to_numpy(ours), cv2_remap(image_np, grid_np, interpolation, padding), interpolation)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (4, 4)])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_matches_cv2_remap_on_tiny_images(size, interpolation, padding):
    """Images smaller than the taps: every tap goes through the border rule (cv2 agrees to ~1e-7 here too)."""
    image_np = np.random.default_rng(5).random((*size, 3), dtype=np.float32)
    grid_np = random_grid((12, 16), size, seed=6, margin=1.0)
    ours = wk.sample(
        to_torch(image_np),
        torch.from_numpy(grid_np)[None],
        interpolation=interpolation,
        padding=padding,
        fill=fill_for(padding),
    )
    if size == (1, 1) and padding not in ("zeros", "constant"):
        # every tap reads the one pixel. cv2 is no reference here: OpenCV 5.0's remap never returns from
        # INTER_CUBIC + BORDER_REFLECT_101 on a 1x1 image
        expected = np.broadcast_to(image_np, (12, 16, 3))
    else:
        expected = cv2_remap(image_np, grid_np, interpolation, padding)
    assert_matches(to_numpy(ours), expected, interpolation)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_constant_scalar_fill_fills_every_channel(image_np, image, interpolation):
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2], seed=1)
    ours = wk.sample(image, torch.from_numpy(grid_np)[None], interpolation=interpolation, padding="constant", fill=0.3)
    ref = cv2.remap(
        image_np,
        grid_np[..., 0].copy(),
        grid_np[..., 1].copy(),
        CV2_INTERP[interpolation],
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.3, 0.3, 0.3, 0),
    )
    assert_matches(to_numpy(ours), ref, interpolation)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matches_cv2_on_a_rotated_grid(image_np, image, interpolation):
    """A smooth grid (rotation + scale) hits pixel boundaries systematically, unlike a random one."""
    h, w = OUT_SIZE
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    angle, scale = math.radians(17), 1.13
    x = scale * (math.cos(angle) * (xs - w / 2) - math.sin(angle) * (ys - h / 2)) + 30.2
    y = scale * (math.sin(angle) * (xs - w / 2) + math.cos(angle) * (ys - h / 2)) + 24.7
    grid_np = np.stack([x, y], -1).astype(np.float32)
    ours = wk.sample(image, torch.from_numpy(grid_np)[None], interpolation=interpolation, padding="reflect101")
    assert_matches(to_numpy(ours), cv2_remap(image_np, grid_np, interpolation, "reflect101"), interpolation)


@pytest.mark.parametrize("offset", [0.5, -0.5, 1.5])
@pytest.mark.parametrize("scale", [1.0, 2.0, 0.5])
def test_nearest_ties_round_like_cv2(image_np, image, offset, scale):
    """Half-pixel shifts and scaling by 2 put every sample on an exact .5 tie: cv2 rounds half to even."""
    ys, xs = np.mgrid[0 : OUT_SIZE[0], 0 : OUT_SIZE[1]].astype(np.float32)
    grid_np = np.stack([scale * xs + offset, scale * ys + offset], -1)
    ours = wk.sample(image, torch.from_numpy(grid_np)[None], interpolation="nearest", padding="reflect")
    np.testing.assert_array_equal(to_numpy(ours), cv2_remap(image_np, grid_np, "nearest", "reflect"))


def test_matches_cv2_on_a_single_channel_real_image():
    image_np = real_image((48, 64)).mean(-1).astype(np.float32)
    grid_np = random_grid(OUT_SIZE, image_np.shape)
    ours = wk.sample(to_torch(image_np), torch.from_numpy(grid_np)[None], interpolation="bicubic", padding="wrap")
    ref = cv2.remap(
        image_np, grid_np[..., 0].copy(), grid_np[..., 1].copy(), cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP
    )
    assert_matches(to_numpy(ours)[..., 0], ref, "bicubic")


# --- against a float64 brute force (independent of torch and of OpenCV) ------------------------


def border_interpolate(p: int, n: int, padding: str) -> int:
    """``cv2.borderInterpolate``: the in-image index read for tap ``p``, or -1 for the constant border."""
    if 0 <= p < n:
        return p
    if padding in ("zeros", "constant"):
        return -1
    if padding == "replicate":
        return 0 if p < 0 else n - 1
    if padding == "wrap":
        return p % n
    if n == 1:
        return 0
    delta = 1 if padding == "reflect101" else 0
    while not 0 <= p < n:
        p = -p - 1 + delta if p < 0 else 2 * n - p - 1 - delta
    return p


def kernel_taps(coord: float, interpolation: str) -> list[tuple[int, float]]:
    """Integer taps and weights of one axis; cubic convolution written in its textbook |x| form."""
    if interpolation == "nearest":
        return [(round(coord), 1.0)]  # Python rounds exact .5 ties to even, like cvRound
    base = math.floor(coord)
    if interpolation == "bilinear":
        return [(base, 1 - (coord - base)), (base + 1, coord - base)]
    a = -0.75

    def cubic(d):
        d = abs(d)
        if d <= 1:
            return (a + 2) * d**3 - (a + 3) * d**2 + 1
        return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a if d < 2 else 0.0

    return [(base + k, cubic(coord - (base + k))) for k in (-1, 0, 1, 2)]


def brute_force(image: np.ndarray, grid: np.ndarray, interpolation, padding, fill) -> np.ndarray:
    """``(H, W, C)`` float64 image read at ``(H_out, W_out, 2)`` points, one tap at a time."""
    h, w, c = image.shape
    fill = np.broadcast_to(np.asarray(fill, np.float64), (c,))
    out = np.zeros(grid.shape[:2] + (c,))
    for i, j in np.ndindex(*grid.shape[:2]):
        x, y = grid[i, j]
        if not (math.isfinite(x) and math.isfinite(y)):
            out[i, j] = fill
            continue
        for row, wy in kernel_taps(y, interpolation):
            for col, wx in kernel_taps(x, interpolation):
                r, q = border_interpolate(row, h, padding), border_interpolate(col, w, padding)
                out[i, j] += wy * wx * (fill if r < 0 or q < 0 else image[r, q])
    return out


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matches_float64_brute_force(interpolation, padding):
    rng = np.random.default_rng(3)
    image_np = rng.uniform(0, 1, (7, 9, 2))
    # far outside too (up to 3 image widths), plus exact integers and a few non-finite points
    grid_np = random_grid((9, 11), (7, 9), seed=4, margin=3.0).astype(np.float64)
    grid_np[0, :4] = [[0, 0], [8, 6], [3, 2], [-1, 7]]
    grid_np[2, :4] = [[2.5, 3.5], [-0.5, 0.5], [8.5, 6.5], [-1.5, 4.5]]  # exact nearest ties
    grid_np[1, :3] = [[np.nan, 1], [np.inf, 2], [3, -np.inf]]
    fill = (0.25, 0.75) if padding == "constant" else 0.0
    ours = wk.sample(
        torch.from_numpy(image_np.transpose(2, 0, 1))[None],
        torch.from_numpy(grid_np)[None],
        interpolation=interpolation,
        padding=padding,
        fill=fill,
    )
    reference = brute_force(image_np, grid_np, interpolation, padding, fill if padding == "constant" else 0.0)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(to_numpy(ours), reference, rtol=0, atol=1e-12)


# --- dtypes, layouts, batches -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2), (torch.float64, 1e-4)]
)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_dtypes_keep_their_dtype_and_match_cv2(image_np, interpolation, dtype, tolerance):
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2], seed=5)
    ours = wk.sample(
        to_torch(image_np, dtype),
        torch.from_numpy(grid_np)[None].to(dtype),
        interpolation=interpolation,
        padding="constant",
        fill=FILL,
    )
    assert ours.dtype == dtype
    # the reference reads the same (rounded) coordinates, so only the image and output rounding differ
    rounded = torch.from_numpy(grid_np).to(dtype).float().numpy()
    assert_matches(to_numpy(ours), cv2_remap(image_np, rounded, interpolation, "constant"), interpolation, tolerance)


def test_unbatched_image_and_grid(image_np, image):
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2], seed=6)
    ours = wk.sample(image[0], torch.from_numpy(grid_np), interpolation="bicubic", padding="reflect")
    assert ours.shape == (3, *OUT_SIZE)
    assert_matches(to_numpy(ours), cv2_remap(image_np, grid_np, "bicubic", "reflect"), "bicubic")


@pytest.mark.parametrize("padding", ["zeros", "constant"])
def test_empty_batch(image, padding):
    empty = image.expand(0, -1, -1, -1).requires_grad_()
    out = wk.sample(empty, torch.zeros(0, 5, 7, 2), padding=padding, fill=FILL)
    assert out.shape == (0, 3, 5, 7)
    out.sum().backward()
    assert empty.grad.shape == empty.shape
    assert wk.sample(image[:0], torch.zeros(1, 5, 7, 2)).shape == (0, 3, 5, 7)


def test_empty_output(image):
    assert wk.sample(image, torch.zeros(1, 0, 7, 2)).shape == (1, 3, 0, 7)


def test_non_contiguous_inputs(image_np):
    big = real_image((96, 64))
    image_np = big[::2]  # strided rows: a non-contiguous view
    image = to_torch(big)[:, :, ::2]
    assert not image.is_contiguous()
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2], seed=7)
    grid = torch.from_numpy(np.ascontiguousarray(grid_np.transpose(1, 0, 2))).transpose(0, 1)[None]
    assert not grid.is_contiguous()
    ours = wk.sample(image, grid, interpolation="bilinear", padding="wrap")
    assert_matches(to_numpy(ours), cv2_remap(np.ascontiguousarray(image_np), grid_np, "bilinear", "wrap"), "bilinear")


def test_channels_last_input_and_output(image_np, image):
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2], seed=8)
    channels_last = image.contiguous(memory_format=torch.channels_last)
    ours = wk.sample(channels_last, torch.from_numpy(grid_np)[None], interpolation="bicubic", padding="replicate")
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert_matches(to_numpy(ours), cv2_remap(image_np, grid_np, "bicubic", "replicate"), "bicubic")


def test_image_batch_broadcasts_over_one_grid(image_np):
    second = np.ascontiguousarray(image_np[::-1, ::-1])
    images = torch.cat([to_torch(image_np), to_torch(second)])
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2], seed=9)
    ours = wk.sample(images, torch.from_numpy(grid_np)[None], padding="reflect101")
    assert ours.shape == (2, 3, *OUT_SIZE)
    for member, source in zip(ours, (image_np, second)):
        assert_matches(to_numpy(member), cv2_remap(source, grid_np, "bilinear", "reflect101"), "bilinear")


def test_grid_batch_broadcasts_over_one_image(image_np, image):
    grids = [random_grid(OUT_SIZE, image_np.shape[:2], seed=s) for s in (10, 11, 12)]
    ours = wk.sample(image, torch.from_numpy(np.stack(grids)), interpolation="bicubic", padding="constant", fill=FILL)
    assert ours.shape == (3, 3, *OUT_SIZE)
    for member, grid_np in zip(ours, grids):
        assert_matches(to_numpy(member), cv2_remap(image_np, grid_np, "bicubic", "constant"), "bicubic")


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_non_finite_coordinates_read_fill(image, interpolation, padding):
    grid = torch.full((1, 2, 3, 2), 5.25)
    grid[0, 0] = torch.tensor([[math.nan, 1.0], [1.0, math.inf], [-math.inf, math.nan]])
    out = wk.sample(image, grid, interpolation=interpolation, padding=padding, fill=FILL)
    expected = torch.tensor(FILL if padding == "constant" else (0.0, 0.0, 0.0))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :, 0], expected[:, None].expand(3, 3), rtol=0, atol=1e-7)


def test_huge_finite_coordinates_do_not_crash(image):
    grid = torch.tensor([[[[1e30, 3.0], [-1e38, 1e38], [3.0, 2.0]]]])
    out = wk.sample(image, grid, interpolation="bicubic", padding="zeros")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :, 0, :2], torch.zeros(3, 2))


# --- gradients ------------------------------------------------------------------------------


def small_problem(seed=0, channels=2, size=(5, 6), out=(3, 4)):
    """Float64 image and grid at generic non-integer points, inside, near and outside the border."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(1, channels, *size, generator=gen, dtype=torch.float64)
    h, w = size
    x = torch.rand(1, *out, generator=gen, dtype=torch.float64) * (w + 4) - 2
    y = torch.rand(1, *out, generator=gen, dtype=torch.float64) * (h + 4) - 2
    return image.requires_grad_(), torch.stack([x, y], -1).requires_grad_()


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_gradcheck_image_and_grid(interpolation, padding):
    image, grid = small_problem()
    fn = lambda i, g: wk.sample(i, g, interpolation=interpolation, padding=padding, fill=0.3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (image, grid))
    assert torch.autograd.gradgradcheck(fn, (image, grid))


def test_gradcheck_per_channel_fill():
    image, grid = small_problem(seed=1)
    fill = torch.tensor([0.2, 0.7], dtype=torch.float64, requires_grad=True)
    fn = lambda i, g, f: wk.sample(i, g, interpolation="bicubic", padding="constant", fill=f)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (image, grid, fill))


@pytest.mark.parametrize("padding", PADDINGS)
def test_nearest_gradients(padding):
    image, grid = small_problem(seed=2)
    assert torch.autograd.gradcheck(lambda i: wk.sample(i, grid, interpolation="nearest", padding=padding), (image,))
    wk.sample(image, grid, interpolation="nearest", padding=padding).sum().backward()
    assert grid.grad is None or torch.equal(grid.grad, torch.zeros_like(grid))


# --- devices -------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_cuda_matches_cv2(image_np, image, interpolation):
    grid_np = random_grid(OUT_SIZE, image_np.shape[:2], seed=13)
    ours = wk.sample(image.cuda(), torch.from_numpy(grid_np)[None].cuda(), interpolation=interpolation, padding="wrap")
    assert ours.is_cuda
    assert_matches(to_numpy(ours.cpu()), cv2_remap(image_np, grid_np, interpolation, "wrap"), interpolation)
