"""``wk.Projective`` against ``cv2.warpPerspective``, kornia ``warp_perspective``, cv2's homography fits."""

from __future__ import annotations

import cv2
import kornia.geometry.transform as KT
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
    to_numpy,
    to_torch,
)

import warpkit as wk

OUT_SIZE = (40, 72)  # (H, W), differs from the (48, 64) input
HOMOGRAPHY = np.array([[0.95, 0.12, 4.3], [-0.08, 1.05, -2.9], [6e-4, -9e-4, 1.0]])
HOMOGRAPHY_2 = np.array([[1.1, -0.05, -3.0], [0.1, 0.9, 5.5], [-1.2e-3, 4e-4, 1.0]])


def cv2_warp_perspective(image_np, h, interpolation, padding, size=OUT_SIZE):
    return cv2.warpPerspective(
        image_np,
        h,
        size[::-1],
        flags=CV2_INTERP[interpolation],
        borderMode=CV2_BORDER[padding],
        borderValue=cv2_border_value(padding),
    )


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_warp_matches_cv2_warp_perspective(image_np, image, interpolation, padding):
    ours = wk.warp(
        image,
        wk.Projective(torch.tensor(HOMOGRAPHY, dtype=torch.float32)),
        OUT_SIZE,
        interpolation=interpolation,
        padding=padding,
        fill=FILL,
    )
    assert ours.shape == (1, 3, *OUT_SIZE)
    assert_matches(to_numpy(ours), cv2_warp_perspective(image_np, HOMOGRAPHY, interpolation, padding), interpolation)


KORNIA_CASES = [
    ("zeros", "zeros", False),
    ("zeros", "zeros", True),
    ("constant", "fill", True),
    ("replicate", "border", True),
    ("reflect", "reflection", False),
    ("reflect101", "reflection", True),
]


@pytest.mark.parametrize(("padding", "kornia_padding", "align_corners"), KORNIA_CASES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_warp_matches_kornia(image, interpolation, padding, kornia_padding, align_corners):
    h = torch.tensor(HOMOGRAPHY, dtype=torch.float32)
    theirs = KT.warp_perspective(
        image,
        h[None],
        OUT_SIZE,
        mode=interpolation,
        padding_mode=kornia_padding,
        align_corners=align_corners,
        fill_value=torch.tensor(FILL),
    )
    ours = wk.warp(image, wk.Projective(h), OUT_SIZE, interpolation=interpolation, padding=padding, fill=FILL)
    assert_matches(to_numpy(ours), to_numpy(theirs), interpolation)


def test_transform_points_matches_cv2():
    points = np.random.default_rng(0).uniform(-20, 90, (25, 2))
    ours = wk.Projective(torch.tensor(HOMOGRAPHY)).transform_points(torch.tensor(points))
    np.testing.assert_allclose(ours.numpy(), cv2.perspectiveTransform(points[None], HOMOGRAPHY)[0], atol=1e-10)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_identity_warp_returns_input(image, interpolation):
    assert torch.equal(wk.warp(image, wk.Projective.identity(), interpolation=interpolation, padding="wrap"), image)


def test_inverse_and_composition_match_numpy(image_np, image):
    t1, t2 = wk.Projective(torch.tensor(HOMOGRAPHY)), wk.Projective(torch.tensor(HOMOGRAPHY_2))
    inv = t1.inverse().matrix[0].numpy()
    np.testing.assert_allclose(inv / inv[2, 2], np.linalg.inv(HOMOGRAPHY) / np.linalg.inv(HOMOGRAPHY)[2, 2], atol=1e-12)
    points = torch.rand(1, 30, 2, dtype=torch.float64) * 60
    torch.testing.assert_close(t1.inverse().transform_points(t1.transform_points(points)), points, atol=1e-10, rtol=0)
    expected = HOMOGRAPHY_2 @ HOMOGRAPHY
    for composed in (t1.then(t2), t2 @ t1):
        m = composed.matrix[0].numpy()
        np.testing.assert_allclose(m / m[2, 2], expected / expected[2, 2], atol=1e-12)
    ours = wk.warp(image, t1.then(t2), OUT_SIZE, interpolation="bilinear", padding="reflect")
    assert_matches(to_numpy(ours), cv2_warp_perspective(image_np, expected, "bilinear", "reflect"), "bilinear")


# --- STN parameters -----------------------------------------------------------------------------


def normalised_reference_grid(params: np.ndarray, dst_size, src_size, align_corners) -> np.ndarray:
    """``(H, W, 2)`` source pixels read when ``params`` (normalised dst -> src, row-major, h33 = 1) drive the warp."""

    def to_norm(v, n):
        return v * 2 / (n - 1) - 1 if align_corners else (2 * v + 1) / n - 1

    def from_norm(u, n):
        return (u + 1) * (n - 1) / 2 if align_corners else ((u + 1) * n - 1) / 2

    theta = np.append(params, 1.0).reshape(3, 3)
    ys, xs = np.mgrid[0 : dst_size[0], 0 : dst_size[1]].astype(np.float64)
    u, v = to_norm(xs, dst_size[1]), to_norm(ys, dst_size[0])
    den = theta[2, 0] * u + theta[2, 1] * v + theta[2, 2]
    su = (theta[0, 0] * u + theta[0, 1] * v + theta[0, 2]) / den
    sv = (theta[1, 0] * u + theta[1, 1] * v + theta[1, 2]) / den
    return np.stack([from_norm(su, src_size[1]), from_norm(sv, src_size[0])], -1).astype(np.float32)


@pytest.mark.parametrize("align_corners", [False, True])
def test_from_params_reads_where_the_normalised_matrix_says(image_np, image, align_corners):
    params = np.array([0.9, 0.1, 0.05, -0.08, 1.1, -0.1, 0.15, -0.1])
    t = wk.Projective.from_params(torch.tensor(params)[None], image_np.shape[:2], OUT_SIZE, align_corners=align_corners)
    grid = normalised_reference_grid(params, OUT_SIZE, image_np.shape[:2], align_corners)
    ours = wk.warp(image, t, OUT_SIZE, interpolation="bicubic", padding="replicate")
    reference = cv2.remap(
        image_np, grid[..., 0].copy(), grid[..., 1].copy(), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    assert_matches(to_numpy(ours), reference, "bicubic")
    np.testing.assert_allclose(
        t.to_params(image_np.shape[:2], OUT_SIZE, align_corners=align_corners)[0].numpy(), params, atol=1e-10
    )


def test_identity_params():
    params = wk.Projective.identity_params(3, dtype=torch.float64)
    assert params.shape == (3, wk.Projective.num_params)
    torch.testing.assert_close(
        wk.Projective.from_params(params, (48, 64)).matrix, torch.eye(3, dtype=torch.float64).expand(3, 3, 3)
    )


# --- estimation -------------------------------------------------------------------------------


def numpy_weighted_dlt(src, dst, weights):
    """Hartley-normalised weighted DLT by numpy SVD (h33 = 1)."""

    def normaliser(p):
        centre = (weights[:, None] * p).sum(0) / weights.sum()
        scale = np.sqrt(2) / ((np.linalg.norm(p - centre, axis=1) * weights).sum() / weights.sum())
        return np.array([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1]])

    ts, td = normaliser(src), normaliser(dst)
    s = cv2.perspectiveTransform(src[None], ts)[0]
    d = cv2.perspectiveTransform(dst[None], td)[0]
    rows = []
    for (x, y), (u, v), w in zip(s, d, np.sqrt(weights)):
        rows.append(w * np.array([x, y, 1, 0, 0, 0, -u * x, -u * y, -u]))
        rows.append(w * np.array([0, 0, 0, x, y, 1, -v * x, -v * y, -v]))
    h = np.linalg.svd(np.array(rows))[2][-1].reshape(3, 3)
    h = np.linalg.inv(td) @ h @ ts
    return h / h[2, 2]


def test_estimate_from_four_points_matches_get_perspective_transform():
    src = np.array([[3.0, 4.0], [60.0, 2.0], [58.0, 45.0], [5.0, 40.0]])
    dst = cv2.perspectiveTransform(src[None], HOMOGRAPHY)[0]
    reference = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    ours = wk.Projective.estimate(torch.tensor(src), torch.tensor(dst)).matrix[0].numpy()
    np.testing.assert_allclose(ours / ours[2, 2], reference / reference[2, 2], atol=1e-6)
    np.testing.assert_allclose(ours / ours[2, 2], HOMOGRAPHY, atol=1e-9)


def test_estimate_with_noise_matches_numpy_dlt_and_find_homography():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 64, (2, 30, 2))
    truths = [HOMOGRAPHY, HOMOGRAPHY_2]
    dst = np.stack([cv2.perspectiveTransform(s[None], h)[0] for s, h in zip(src, truths)]) + rng.normal(
        0, 0.3, (2, 30, 2)
    )
    weights = rng.uniform(0.2, 2.0, (2, 30))
    ours = wk.Projective.estimate(torch.tensor(src), torch.tensor(dst), torch.tensor(weights)).matrix.numpy()
    for b in range(2):
        np.testing.assert_allclose(ours[b] / ours[b, 2, 2], numpy_weighted_dlt(src[b], dst[b], weights[b]), atol=1e-8)
    # unweighted: cv2.findHomography (method 0: all points, DLT then Levenberg-Marquardt refinement) reprojects
    # to within a small fraction of the noise of the DLT result
    plain = wk.Projective.estimate(torch.tensor(src[0]), torch.tensor(dst[0])).matrix[0].numpy()
    reference, _ = cv2.findHomography(src[0], dst[0], method=0)
    grid = rng.uniform(0, 64, (1, 50, 2))
    gap = np.abs(cv2.perspectiveTransform(grid, plain) - cv2.perspectiveTransform(grid, reference)).max()
    assert gap < 0.05, gap


def test_integer_weights_equal_repeated_points():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 64, (8, 2))
    dst = cv2.perspectiveTransform(src[None], HOMOGRAPHY)[0] + rng.normal(0, 0.5, (8, 2))
    weights = np.array([1, 2, 1, 3, 1, 1, 2, 1.0])
    weighted = wk.Projective.estimate(torch.tensor(src), torch.tensor(dst), torch.tensor(weights)).matrix[0].numpy()
    repeat = np.repeat(np.arange(8), weights.astype(int))
    repeated = wk.Projective.estimate(torch.tensor(src[repeat]), torch.tensor(dst[repeat])).matrix[0].numpy()
    np.testing.assert_allclose(weighted / weighted[2, 2], repeated / repeated[2, 2], atol=1e-9)


def test_estimate_is_differentiable():
    gen = torch.Generator().manual_seed(3)
    src = torch.rand(6, 2, generator=gen, dtype=torch.float64) * 10
    dst = (src + torch.rand(6, 2, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda d: wk.Projective.estimate(src, d).matrix, (dst,))


# --- gradients and batches ------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_gradcheck_image_and_matrix(interpolation):
    image = torch.rand(1, 2, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    h = torch.tensor([[0.97, 0.08, 0.31], [-0.06, 1.04, -0.27], [0.011, -0.013, 1.0]], dtype=torch.float64)
    fn = lambda i, m: wk.warp(i, wk.Projective(m), (5, 8), interpolation=interpolation, padding="reflect101")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (image, h.requires_grad_()))


def test_gradcheck_params():
    image = torch.rand(1, 1, 6, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = torch.tensor([[0.9, 0.1, 0.05, -0.08, 1.1, -0.1, 0.15, -0.1]], dtype=torch.float64, requires_grad=True)
    fn = lambda p: wk.warp(image, wk.Projective.from_params(p, (6, 7), (5, 8)), (5, 8), interpolation="bicubic")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (params,))


def test_batch_members_are_independent(image_np, image):
    second = np.ascontiguousarray(image_np[::-1])
    h = torch.tensor(np.stack([HOMOGRAPHY, HOMOGRAPHY_2]), dtype=torch.float32, requires_grad=True)
    ours = wk.warp(
        torch.cat([image, to_torch(second)]),
        wk.Projective(h),
        OUT_SIZE,
        interpolation="bicubic",
        padding="constant",
        fill=FILL,
    )
    for member, source, matrix in zip(ours, (image_np, second), (HOMOGRAPHY, HOMOGRAPHY_2)):
        assert_matches(to_numpy(member), cv2_warp_perspective(source, matrix, "bicubic", "constant"), "bicubic")
    ours[0].sum().backward()
    assert torch.equal(h.grad[1], torch.zeros(3, 3)) and h.grad[0].abs().sum() > 0
