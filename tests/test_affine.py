"""``wk.Affine`` against ``cv2.warpAffine``, kornia ``warp_affine``, torch ``affine_grid`` and numpy."""

from __future__ import annotations

import math

import cv2
import kornia.geometry.transform as KT
import numpy as np
import pytest
import torch
import torch.nn.functional as F
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


def affine_matrix(angle=0.3, scale=(1.1, 0.9), shear=0.15, shift=(6.3, -4.2)) -> np.ndarray:
    """A generic ``(2, 3)`` float64 source -> destination matrix."""
    c, s = math.cos(angle), math.sin(angle)
    linear = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) @ np.diag(scale)
    return np.hstack([linear, np.array(shift)[:, None]])


MATRICES = {
    "generic": affine_matrix(),
    "half_pixel_shift": np.array([[1.0, 0, 0.5], [0, 1.0, -0.5]]),  # every nearest sample an exact tie
    "upscale": np.array([[1.6, 0, -7.0], [0, 1.6, -5.0]]),
}


def cv2_warp_affine(image_np, matrix, interpolation, padding, size=OUT_SIZE):
    return cv2.warpAffine(
        image_np,
        matrix,
        size[::-1],
        flags=CV2_INTERP[interpolation],
        borderMode=CV2_BORDER[padding],
        borderValue=cv2_border_value(padding),
    )


# --- warp against cv2.warpAffine --------------------------------------------------------------


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("matrix", ["generic", "half_pixel_shift"])
def test_warp_matches_cv2_warp_affine(image_np, image, matrix, interpolation, padding):
    m = MATRICES[matrix]
    ours = wk.warp(
        image,
        wk.Affine(torch.tensor(m, dtype=torch.float32)),
        OUT_SIZE,
        interpolation=interpolation,
        padding=padding,
        fill=FILL,
    )
    assert ours.shape == (1, 3, *OUT_SIZE)
    assert_matches(to_numpy(ours), cv2_warp_affine(image_np, m, interpolation, padding), interpolation)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_float64_matrix_and_image(image_np, interpolation):
    m = MATRICES["upscale"]
    ours = wk.warp(to_torch(image_np, torch.float64), wk.Affine(torch.tensor(m)), OUT_SIZE, interpolation=interpolation)
    assert ours.dtype == torch.float64
    assert_matches(to_numpy(ours), cv2_warp_affine(image_np, m, interpolation, "zeros"), interpolation)


def test_default_size_is_input_size(image_np, image):
    m = MATRICES["generic"]
    ours = wk.warp(image, wk.Affine(torch.tensor(m, dtype=torch.float32)))
    assert_matches(to_numpy(ours), cv2_warp_affine(image_np, m, "bilinear", "zeros", image_np.shape[:2]), "bilinear")


# --- warp against kornia ------------------------------------------------------------------------

# our padding -> (kornia padding_mode, align_corners values for which kornia means the same thing)
KORNIA_PADDING = {
    "zeros": ("zeros", (False, True)),
    "constant": ("fill", (False, True)),
    "replicate": ("border", (False, True)),
    "reflect": ("reflection", (False,)),
    "reflect101": ("reflection", (True,)),
}
KORNIA_CASES = [(p, ac) for p, (_, acs) in KORNIA_PADDING.items() for ac in acs]


@pytest.mark.parametrize(("padding", "align_corners"), KORNIA_CASES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_warp_matches_kornia(image, interpolation, padding, align_corners):
    m = torch.tensor(MATRICES["generic"], dtype=torch.float32)
    kornia_padding, _ = KORNIA_PADDING[padding]
    theirs = KT.warp_affine(
        image,
        m[None],
        OUT_SIZE,
        mode=interpolation,
        padding_mode=kornia_padding,
        align_corners=align_corners,
        fill_value=torch.tensor(FILL),
    )
    ours = wk.warp(image, wk.Affine(m), OUT_SIZE, interpolation=interpolation, padding=padding, fill=FILL)
    assert_matches(to_numpy(ours), to_numpy(theirs), interpolation)


# --- STN parameters: torch's affine_grid theta --------------------------------------------------


def theta_reference(m: np.ndarray, src_size, dst_size, align_corners) -> np.ndarray:
    """``(2, 3)`` theta = N_src A N_dst^-1 (A = M^-1; N maps pixels to [-1, 1] for the align_corners), in numpy."""

    def norm(size):
        h, w = size
        if align_corners:
            return np.array([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1], [0, 0, 1]])
        return np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])

    dst_to_src = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    return (norm(src_size) @ dst_to_src @ np.linalg.inv(norm(dst_size)))[:2]


@pytest.mark.parametrize("align_corners", [False, True])
def test_to_params_is_the_affine_grid_theta(image_np, image, align_corners):
    m = MATRICES["generic"]
    theta = wk.Affine(torch.tensor(m)).to_params(image_np.shape[:2], OUT_SIZE, align_corners=align_corners)
    assert theta.shape == (1, 6)
    np.testing.assert_allclose(
        theta.reshape(2, 3).numpy(), theta_reference(m, image_np.shape[:2], OUT_SIZE, align_corners), atol=1e-12
    )
    # and torch, given that theta, performs cv2's warp
    grid = F.affine_grid(theta.reshape(1, 2, 3).float(), [1, 3, *OUT_SIZE], align_corners=align_corners)
    theirs = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=align_corners)
    assert_matches(to_numpy(theirs), cv2_warp_affine(image_np, m, "bilinear", "replicate"), "bilinear")


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_from_params_warps_like_affine_grid(image, interpolation, align_corners):
    theta = torch.tensor([[0.9, -0.25, 0.1, 0.2, 1.05, -0.15]])
    ours = wk.warp(
        image,
        wk.Affine.from_params(theta, image.shape[-2:], OUT_SIZE, align_corners=align_corners),
        OUT_SIZE,
        interpolation=interpolation,
        padding="replicate",
    )
    grid = F.affine_grid(theta.reshape(1, 2, 3), [1, 3, *OUT_SIZE], align_corners=align_corners)
    theirs = F.grid_sample(image, grid, mode=interpolation, padding_mode="border", align_corners=align_corners)
    assert_matches(to_numpy(ours), to_numpy(theirs), interpolation)


@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_params_give_the_identity(align_corners):
    params = wk.Affine.identity_params(2)
    assert params.shape == (2, wk.Affine.num_params)
    matrix = wk.Affine.from_params(params, (48, 64), align_corners=align_corners).matrix
    torch.testing.assert_close(matrix, torch.eye(3).expand(2, 3, 3), atol=1e-6, rtol=0)


# --- points, identity, inverse, composition -----------------------------------------------------


def test_transform_points_matches_cv2_transform():
    m = MATRICES["generic"]
    points = np.random.default_rng(0).uniform(-50, 150, (20, 2))
    ours = wk.Affine(torch.tensor(m)).transform_points(torch.tensor(points))
    np.testing.assert_allclose(ours.numpy(), cv2.transform(points[None], m)[0], atol=1e-12)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_identity_warp_returns_input(image, interpolation, padding):
    out = wk.warp(image, wk.Affine.identity(), interpolation=interpolation, padding=padding, fill=FILL)
    assert torch.equal(out, image)


def test_inverse_matches_numpy_and_round_trips():
    m = MATRICES["generic"]
    inverse = wk.Affine(torch.tensor(m)).inverse()
    np.testing.assert_allclose(inverse.matrix[0].numpy(), np.linalg.inv(np.vstack([m, [0, 0, 1]])), atol=1e-12)
    points = torch.rand(1, 30, 2, dtype=torch.float64) * 100
    back = inverse.inverse().inverse().transform_points(wk.Affine(torch.tensor(m)).transform_points(points))
    torch.testing.assert_close(back, points, atol=1e-10, rtol=0)


def test_inverse_warp_undoes_the_warp(image):
    """Warping forth and back with bicubic returns the interior close to the input (two resamplings)."""
    t = wk.Affine(torch.tensor([[1.0, 0.0, 3.25], [0.0, 1.0, -2.75]]))
    there_and_back = wk.warp(wk.warp(image, t, padding="reflect"), t.inverse(), padding="reflect")
    torch.testing.assert_close(there_and_back[..., 6:-6, 6:-6], image[..., 6:-6, 6:-6], atol=0.08, rtol=0)


def test_then_and_matmul_compose_like_matrices(image_np, image):
    a, b = MATRICES["generic"], MATRICES["upscale"]
    ta, tb = wk.Affine(torch.tensor(a)), wk.Affine(torch.tensor(b))
    expected = np.vstack([b, [0, 0, 1]]) @ np.vstack([a, [0, 0, 1]])  # a first, then b
    for composed in (ta.then(tb), tb @ ta):
        assert isinstance(composed, wk.Affine)
        np.testing.assert_allclose(composed.matrix[0].numpy(), expected, atol=1e-12)
    ours = wk.warp(image, ta.then(tb), OUT_SIZE, interpolation="bicubic")
    assert_matches(to_numpy(ours), cv2_warp_affine(image_np, expected[:2], "bicubic", "zeros"), "bicubic")


def test_affine_then_projective_is_projective():
    h = np.array([[1.0, 0.1, 2.0], [0.05, 0.95, -1.0], [1e-3, -5e-4, 1.0]])
    composed = wk.Affine(torch.tensor(MATRICES["generic"])).then(wk.Projective(torch.tensor(h)))
    assert isinstance(composed, wk.Projective)
    np.testing.assert_allclose(composed.matrix[0].numpy(), h @ np.vstack([MATRICES["generic"], [0, 0, 1]]), atol=1e-12)


# --- estimation -------------------------------------------------------------------------------


def numpy_weighted_affine(src, dst, weights):
    """Weighted least squares ``dst ~ M [x, y, 1]``, solved by numpy's lstsq on sqrt-weighted rows."""
    design = np.hstack([src, np.ones((len(src), 1))]) * np.sqrt(weights)[:, None]
    solution, *_ = np.linalg.lstsq(design, dst * np.sqrt(weights)[:, None], rcond=None)
    return solution.T


def test_estimate_recovers_a_known_transform_exactly():
    m = MATRICES["generic"]
    src = np.random.default_rng(1).uniform(0, 100, (3, 2))  # the minimum
    dst = cv2.transform(src[None], m)[0]
    estimated = wk.Affine.estimate(torch.tensor(src), torch.tensor(dst))
    np.testing.assert_allclose(estimated.matrix[0, :2].numpy(), m, atol=1e-9)


def test_estimate_with_noise_and_weights_matches_numpy_lstsq():
    rng = np.random.default_rng(2)
    m = [MATRICES["generic"], MATRICES["upscale"], np.array([[0.7, 0.3, 1.0], [-0.2, 1.2, 4.0]])]
    src = rng.uniform(0, 100, (3, 25, 2))
    dst = np.stack([cv2.transform(s[None], mi)[0] for s, mi in zip(src, m)]) + rng.normal(0, 0.5, (3, 25, 2))
    weights = rng.uniform(0.1, 2.0, (3, 25))
    estimated = wk.Affine.estimate(torch.tensor(src), torch.tensor(dst), torch.tensor(weights))
    assert estimated.batch_size == 3
    for b in range(3):
        np.testing.assert_allclose(
            estimated.matrix[b, :2].numpy(), numpy_weighted_affine(src[b], dst[b], weights[b]), atol=1e-9
        )
    # without weights: cv2's least-squares affine fit (no RANSAC, all points inliers)
    unweighted = wk.Affine.estimate(torch.tensor(src[0]), torch.tensor(dst[0]))
    np.testing.assert_allclose(
        unweighted.matrix[0, :2].numpy(), numpy_weighted_affine(src[0], dst[0], np.ones(25)), atol=1e-9
    )


def test_estimate_is_differentiable():
    gen = torch.Generator().manual_seed(3)
    src = torch.rand(6, 2, generator=gen, dtype=torch.float64) * 10
    dst = (src + torch.rand(6, 2, generator=gen, dtype=torch.float64)).requires_grad_()
    weights = torch.rand(6, generator=gen, dtype=torch.float64).add(0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda d, w: wk.Affine.estimate(src, d, w).matrix, (dst, weights))


# --- gradients ------------------------------------------------------------------------------


def small_image(seed=0):
    return torch.rand(1, 2, 6, 7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize("padding", ["zeros", "reflect", "wrap"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_gradcheck_image_and_matrix(interpolation, padding):
    image = small_image()
    m = torch.tensor(affine_matrix(angle=0.2, scale=(0.93, 1.07), shear=0.1, shift=(0.37, -0.41))).requires_grad_()
    fn = lambda i, mm: wk.warp(i, wk.Affine(mm), (5, 8), interpolation=interpolation, padding=padding)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (image, m))


@pytest.mark.parametrize("align_corners", [False, True])
def test_gradcheck_params(align_corners):
    image = small_image(1)
    theta = torch.tensor([[0.9, -0.2, 0.13, 0.15, 1.1, -0.07]], dtype=torch.float64, requires_grad=True)
    fn = lambda p: wk.warp(  # noqa: E731
        image, wk.Affine.from_params(p, (6, 7), (5, 8), align_corners=align_corners), (5, 8), interpolation="bicubic"
    )
    assert torch.autograd.gradcheck(fn, (theta,))


# --- batches ----------------------------------------------------------------------------------


def test_batch_members_are_independent(image_np, image):
    matrices = [MATRICES["generic"], MATRICES["upscale"], MATRICES["half_pixel_shift"]]
    second = np.ascontiguousarray(image_np[::-1])
    third = np.ascontiguousarray(image_np[:, ::-1])
    images = torch.cat([image, to_torch(second), to_torch(third)])
    m = torch.tensor(np.stack(matrices), dtype=torch.float32, requires_grad=True)
    ours = wk.warp(images, wk.Affine(m), OUT_SIZE, interpolation="bicubic", padding="wrap")
    for member, source, matrix in zip(ours, (image_np, second, third), matrices):
        assert_matches(to_numpy(member), cv2_warp_affine(source, matrix, "bicubic", "wrap"), "bicubic")
    ours[1].sum().backward()
    assert torch.equal(m.grad[[0, 2]], torch.zeros(2, 2, 3))
    assert m.grad[1].abs().sum() > 0


def test_one_transform_broadcasts_over_an_image_batch(image_np, image):
    second = np.ascontiguousarray(image_np[::-1])
    m = MATRICES["generic"]
    ours = wk.warp(torch.cat([image, to_torch(second)]), wk.Affine(torch.tensor(m, dtype=torch.float32)), OUT_SIZE)
    for member, source in zip(ours, (image_np, second)):
        assert_matches(to_numpy(member), cv2_warp_affine(source, m, "bilinear", "zeros"), "bilinear")
