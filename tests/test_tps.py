"""``wk.ThinPlateSpline`` against ``scipy.interpolate.RBFInterpolator`` and ``cv2.remap``."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

import warpkit as wk
from conftest import CV2_BORDER, CV2_INTERP, FILL, INTERPOLATIONS, PADDINGS, assert_matches, cv2_border_value, to_numpy

OUT_SIZE = (30, 40)  # (H, W), differs from the (48, 64) input; small: the grid is a Newton solve


def control_points(seed=0, k=9, jitter=3.0):
    """``(K, 2)`` source points over a 64 x 48 image and destinations moved by up to ``jitter`` pixels."""
    rng = np.random.default_rng(seed)
    src = np.column_stack([rng.uniform(0, 64, k), rng.uniform(0, 48, k)])
    return src, src + rng.uniform(-jitter, jitter, (k, 2))


def scipy_tps(src, dst, smoothing=0.0):
    return RBFInterpolator(src, dst, kernel="thin_plate_spline", smoothing=smoothing)


# --- the map itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("regularization", [0.0, 0.5, 20.0])
def test_map_matches_scipy(regularization):
    src, dst = control_points()
    points = np.random.default_rng(1).uniform(-20, 80, (200, 2))
    ours = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst), regularization).transform_points(torch.tensor(points))
    np.testing.assert_allclose(ours.numpy(), scipy_tps(src, dst, regularization)(points), atol=1e-9)


def test_interpolates_control_points_exactly():
    src, dst = control_points(k=12)
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    np.testing.assert_allclose(tps.transform_points(torch.tensor(src)).numpy(), dst, atol=1e-9)


def test_batch_matches_scipy_per_member():
    pairs = [control_points(seed=s) for s in (2, 3, 4)]
    src = torch.tensor(np.stack([p[0] for p in pairs]))
    dst = torch.tensor(np.stack([p[1] for p in pairs]))
    tps = wk.ThinPlateSpline.fit(src, dst, 1.0)
    assert tps.batch_size == 3
    points = np.random.default_rng(5).uniform(0, 64, (50, 2))
    ours = tps.transform_points(torch.tensor(points))
    for b, (s, d) in enumerate(pairs):
        np.testing.assert_allclose(ours[b].numpy(), scipy_tps(s, d, 1.0)(points), atol=1e-9)


def test_float32_points_give_float32_with_float64_accuracy():
    src, dst = control_points(seed=6)
    tps = wk.ThinPlateSpline.fit(torch.tensor(src, dtype=torch.float32), torch.tensor(dst, dtype=torch.float32))
    points = np.random.default_rng(7).uniform(0, 64, (50, 2)).astype(np.float32)
    ours = tps.transform_points(torch.tensor(points))
    assert ours.dtype == torch.float32
    reference = scipy_tps(src.astype(np.float32).astype(np.float64), dst.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(ours.numpy(), reference(points.astype(np.float64)), atol=2e-5)


# --- grids and warps ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spline_and_grid():
    src, dst = control_points(seed=8, k=10, jitter=2.0)  # jitter 4 folds this one over
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    return src, dst, tps, tps.grid(OUT_SIZE)


def test_grid_is_where_scipy_maps_to_the_pixel_centres(spline_and_grid):
    """The grid is the inverse map (Newton): scipy's forward map of each grid point lands on its pixel."""
    src, dst, _, grid = spline_and_grid
    assert grid.shape == (1, *OUT_SIZE, 2)
    ys, xs = np.mgrid[0 : OUT_SIZE[0], 0 : OUT_SIZE[1]]
    landed = scipy_tps(src, dst)(grid[0].reshape(-1, 2).numpy())
    np.testing.assert_allclose(landed, np.column_stack([xs.ravel(), ys.ravel()]), atol=1e-6)


def test_grid_and_transform_points_are_consistent(spline_and_grid):
    _, _, tps, grid = spline_and_grid
    centres = tps.transform_points(grid.reshape(1, -1, 2))
    ys, xs = torch.meshgrid(torch.arange(OUT_SIZE[0]), torch.arange(OUT_SIZE[1]), indexing="ij")
    torch.testing.assert_close(centres[0], torch.stack([xs, ys], -1).reshape(-1, 2).double(), atol=1e-6, rtol=0)
    # the reported Newton residual (fit splines are native source -> destination, so the grid is solved)
    _, residual = tps.solve(torch.stack([xs, ys], -1).reshape(1, -1, 2).double())
    assert residual.shape == (1, OUT_SIZE[0] * OUT_SIZE[1]) and float(residual.max()) < 1e-6


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_warp_matches_cv2_remap_on_its_grid(image_np, image, spline_and_grid, interpolation, padding):
    *_, tps, grid = spline_and_grid
    ours = wk.warp(image, tps, OUT_SIZE, interpolation=interpolation, padding=padding, fill=FILL)
    g = grid[0].float().numpy()
    reference = cv2.remap(
        image_np, g[..., 0].copy(), g[..., 1].copy(), CV2_INTERP[interpolation], borderMode=CV2_BORDER[padding],
        borderValue=cv2_border_value(padding),
    )
    assert_matches(to_numpy(ours), reference, interpolation)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_identity_warp_returns_input(image, interpolation):
    out = wk.warp(image, wk.ThinPlateSpline.identity(), interpolation=interpolation, padding="reflect")
    assert torch.equal(out, image)


def test_fit_to_identical_points_warps_to_the_input(image):
    src, _ = control_points(seed=9)
    out = wk.warp(image, wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(src)), interpolation="bicubic")
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)


# --- STN parameters -------------------------------------------------------------------------------


def control_grid(k):
    line = np.linspace(-1, 1, k)
    gy, gx = np.meshgrid(line, line, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()])


@pytest.mark.parametrize("align_corners", [False, True])
def test_from_params_matches_scipy_in_the_normalised_frame(image_np, image, align_corners):
    """STN parameters: where each destination control point (normalised) reads the source (normalised)."""
    rng = np.random.default_rng(10)
    params = control_grid(4) + rng.uniform(-0.15, 0.15, (16, 2))
    tps = wk.ThinPlateSpline.from_params(torch.tensor(params.reshape(1, -1)), image_np.shape[:2], OUT_SIZE, align_corners=align_corners)
    (h, w), (hs, ws) = OUT_SIZE, image_np.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    if align_corners:
        u, v = xs * 2 / (w - 1) - 1, ys * 2 / (h - 1) - 1
    else:
        u, v = (2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1
    source = scipy_tps(control_grid(4), params)(np.column_stack([u.ravel(), v.ravel()]))
    if align_corners:
        px, py = (source[:, 0] + 1) * (ws - 1) / 2, (source[:, 1] + 1) * (hs - 1) / 2
    else:
        px, py = ((source[:, 0] + 1) * ws - 1) / 2, ((source[:, 1] + 1) * hs - 1) / 2
    expected = np.column_stack([px, py]).reshape(h, w, 2)
    np.testing.assert_allclose(tps.grid(OUT_SIZE)[0].double().numpy(), expected, atol=1e-4)
    ours = wk.warp(image.double(), tps, OUT_SIZE, interpolation="bilinear", padding="replicate")
    reference = cv2.remap(image_np, *[expected[..., i].astype(np.float32) for i in (0, 1)], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert_matches(to_numpy(ours), reference, "bilinear")
    # the parameters come back (the grid is native, so this goes through the Newton inverse twice)
    back = tps.to_params(image_np.shape[:2], OUT_SIZE, align_corners=align_corners)
    np.testing.assert_allclose(back[0].numpy(), params.ravel(), atol=1e-6)


@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_params_warp_to_the_input(image, align_corners):
    params = wk.ThinPlateSpline.identity_params(1)
    assert params.shape == (1, wk.ThinPlateSpline.num_params)
    tps = wk.ThinPlateSpline.from_params(params, image.shape[-2:], align_corners=align_corners)
    out = wk.warp(image, tps, interpolation="bilinear")
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)


# --- inverse and composition --------------------------------------------------------------------


def test_inverse_round_trips():
    src, dst = control_points(seed=11)
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    points = torch.tensor(np.random.default_rng(12).uniform(0, 64, (1, 40, 2)))
    torch.testing.assert_close(tps.inverse().transform_points(tps.transform_points(points)), points, atol=1e-8, rtol=0)
    torch.testing.assert_close(tps.transform_points(tps.inverse().transform_points(points)), points, atol=1e-8, rtol=0)


def test_affine_then_tps_is_composed_and_its_grid_is_the_composition(image_np, image):
    src, dst = control_points(seed=13)
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    m = np.array([[1.05, 0.1, -2.0], [-0.08, 0.97, 1.5]])
    affine = wk.Affine(torch.tensor(m))
    composed = affine.then(tps)
    assert isinstance(composed, wk.Composed)
    assert isinstance(tps @ affine, wk.Composed)
    points = np.random.default_rng(14).uniform(0, 64, (30, 2))
    expected = scipy_tps(src, dst)(cv2.transform(points[None], m)[0])  # affine first, then the spline
    np.testing.assert_allclose(composed.transform_points(torch.tensor(points)).numpy(), expected, atol=1e-9)
    np.testing.assert_allclose((tps @ affine).transform_points(torch.tensor(points)).numpy(), expected, atol=1e-9)
    # grid: each destination pixel reads affine^-1(tps^-1(q)); checked through scipy's forward map
    grid = composed.grid(OUT_SIZE)[0].reshape(-1, 2).numpy()
    landed = scipy_tps(src, dst)(cv2.transform(grid[None].astype(np.float64), m)[0])
    ys, xs = np.mgrid[0 : OUT_SIZE[0], 0 : OUT_SIZE[1]]
    np.testing.assert_allclose(landed, np.column_stack([xs.ravel(), ys.ravel()]), atol=1e-6)
    g = grid.reshape(*OUT_SIZE, 2).astype(np.float32)
    ours = wk.warp(image, composed, OUT_SIZE, interpolation="bicubic", padding="reflect101")
    reference = cv2.remap(image_np, g[..., 0].copy(), g[..., 1].copy(), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    assert_matches(to_numpy(ours), reference, "bicubic")


def test_folding_spline_warns_about_convergence():
    src = np.array([[0.0, 0], [10, 0], [0, 10], [10, 10], [5, 5]])
    dst = src.copy()
    dst[4] = [30.0, 30.0]  # drags the centre past a corner: the map folds over
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    with pytest.warns(wk.ConvergenceWarning):
        tps.grid((40, 40))


def test_smooth_spline_does_not_warn(spline_and_grid):
    *_, tps, _ = spline_and_grid
    with warnings.catch_warnings():
        warnings.simplefilter("error", wk.ConvergenceWarning)
        tps.grid((10, 12))


# --- estimation (fit) with noise and weights ---------------------------------------------------


def test_estimate_with_regularization_and_weights_matches_weighted_system():
    """Per-point weights scale the regularisation: scipy gets ``smoothing = lambda / weights``."""
    src, dst = control_points(seed=15, k=12, jitter=5.0)
    weights = np.random.default_rng(16).uniform(0.5, 3.0, 12)
    tps = wk.ThinPlateSpline.estimate(torch.tensor(src), torch.tensor(dst), torch.tensor(weights), regularization=4.0)
    points = np.random.default_rng(17).uniform(0, 64, (40, 2))
    reference = scipy_tps(src, dst, 4.0 / weights)(points)
    np.testing.assert_allclose(tps.transform_points(torch.tensor(points)).numpy(), reference, atol=1e-9)


# --- gradients and batches ------------------------------------------------------------------------


def test_gradcheck_map_wrt_control_points():
    src, dst = (torch.tensor(a).requires_grad_() for a in control_points(seed=18, k=6))
    points = torch.tensor(np.random.default_rng(19).uniform(0, 64, (7, 2)))
    assert torch.autograd.gradcheck(lambda s, d: wk.ThinPlateSpline.fit(s, d, 0.1).transform_points(points), (src, dst))


def test_gradcheck_inverse_map_wrt_control_points():
    """The Newton inverse differentiates by the implicit function theorem."""
    src, dst = control_points(seed=20, k=6)
    dst = torch.tensor(dst).requires_grad_()
    points = torch.tensor(np.random.default_rng(21).uniform(5, 55, (7, 2)))
    fn = lambda d, p: wk.ThinPlateSpline.fit(torch.tensor(src), d).inverse().transform_points(p)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (dst, points.requires_grad_()))


def test_gradcheck_warp_wrt_image_and_control_points():
    gen = torch.Generator().manual_seed(22)
    image = torch.rand(1, 1, 6, 7, generator=gen, dtype=torch.float64).requires_grad_()
    src = torch.tensor([[0.3, 0.2], [6.1, 0.4], [0.2, 5.3], [5.8, 5.1], [3.1, 2.7]], dtype=torch.float64)
    dst = (src + torch.rand(5, 2, generator=gen, dtype=torch.float64) * 0.6 - 0.3).requires_grad_()
    fn = lambda i, d: wk.warp(i, wk.ThinPlateSpline.fit(src, d), (5, 6), interpolation="bicubic", padding="reflect")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (image, dst), fast_mode=True)


def test_gradcheck_params():
    image = torch.rand(1, 1, 6, 7, generator=torch.Generator().manual_seed(23), dtype=torch.float64)
    rng = np.random.default_rng(24)
    params = torch.tensor((control_grid(3) + rng.uniform(-0.1, 0.1, (9, 2))).reshape(1, -1), requires_grad=True)
    fn = lambda p: wk.warp(image, wk.ThinPlateSpline.from_params(p, (6, 7), (5, 6)), (5, 6))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (params,))


def test_batch_members_are_independent():
    pairs = [control_points(seed=s) for s in (25, 26)]
    dst = torch.tensor(np.stack([p[1] for p in pairs]), requires_grad=True)
    tps = wk.ThinPlateSpline.fit(torch.tensor(np.stack([p[0] for p in pairs])), dst)
    grid = tps.grid((6, 8))
    for b, (s, d) in enumerate(pairs):
        single = wk.ThinPlateSpline.fit(torch.tensor(s), torch.tensor(d)).grid((6, 8))
        torch.testing.assert_close(grid[b], single[0], atol=1e-9, rtol=0)
    grid[0].sum().backward()
    assert torch.equal(dst.grad[1], torch.zeros_like(dst.grad[1])) and dst.grad[0].abs().sum() > 0
