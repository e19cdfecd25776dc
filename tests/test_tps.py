"""``wk.ThinPlateSpline`` against ``scipy.interpolate.RBFInterpolator`` and ``cv2.remap``.

``fit(src, dst)`` is native destination -> source: its grid is ``RBFInterpolator(dst, src)`` at the pixel
centres, and ``transform_points`` is that map's inverse; ``fit(dst, src).inverse()`` is ``RBFInterpolator(src, dst)``.
"""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest
import torch
from conftest import CV2_BORDER, CV2_INTERP, FILL, INTERPOLATIONS, PADDINGS, assert_matches, cv2_border_value, to_numpy
from scipy.interpolate import RBFInterpolator

import warpkit as wk

OUT_SIZE = (30, 40)  # (H, W), differs from the (48, 64) input


def control_points(seed=0, k=9, jitter=3.0):
    """``(K, 2)`` source points over a 64 x 48 image and destinations moved by up to ``jitter`` pixels."""
    rng = np.random.default_rng(seed)
    src = np.column_stack([rng.uniform(0, 64, k), rng.uniform(0, 48, k)])
    return src, src + rng.uniform(-jitter, jitter, (k, 2))


def scipy_tps(src, dst, smoothing=0.0):
    return RBFInterpolator(src, dst, kernel="thin_plate_spline", smoothing=smoothing)


# --- the map itself ------------------------------------------------------------------------------


def pixel_centres(size):
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]]
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


@pytest.mark.parametrize("regularization", [0.0, 0.5, 20.0])
def test_map_matches_scipy(regularization):
    """The native map (the grid) is scipy's destination -> source spline; transform_points inverts it."""
    src, dst = control_points()
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst), regularization)
    reference = scipy_tps(dst, src, regularization)
    grid = tps.grid(OUT_SIZE)[0].reshape(-1, 2).numpy()
    np.testing.assert_allclose(grid, reference(pixel_centres(OUT_SIZE)), atol=1e-9)
    points = np.random.default_rng(1).uniform(-20, 80, (200, 2))
    mapped = tps.transform_points(torch.tensor(points)).numpy()
    np.testing.assert_allclose(reference(mapped), points, atol=1e-9)


@pytest.mark.parametrize("regularization", [0.0, 0.5, 20.0])
def test_reversed_fit_inverted_is_scipys_forward_map(regularization):
    src, dst = control_points()
    points = np.random.default_rng(1).uniform(-20, 80, (200, 2))
    ours = wk.ThinPlateSpline.fit(torch.tensor(dst), torch.tensor(src), regularization).inverse()
    np.testing.assert_allclose(
        ours.transform_points(torch.tensor(points)).numpy(), scipy_tps(src, dst, regularization)(points), atol=1e-9
    )


def test_far_from_the_origin_well_spread_points_fit_as_scipy_does():
    """Six points over 10,000 px at an offset of 1e5 px: the fit is centred and scaled, so it is solvable."""
    rng = np.random.default_rng(30)
    src = rng.uniform(0, 10_000, (6, 2)) + 1e5
    dst = src + rng.uniform(-40, 40, (6, 2))
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    np.testing.assert_allclose(tps.transform_points(torch.tensor(src)).numpy(), dst, atol=1e-8)
    points = rng.uniform(0, 10_000, (50, 2)) + 1e5
    expected = scipy_tps(dst, src)(points)
    np.testing.assert_allclose(tps.inverse().transform_points(torch.tensor(points)).numpy(), expected, atol=1e-7)


def test_regularization_scales_with_the_frame():
    """Smoothing is in pixels (scipy's), whatever the fit's internal frame: a large spread still matches."""
    rng = np.random.default_rng(31)
    src = rng.uniform(0, 3000, (12, 2))
    dst = src + rng.uniform(-30, 30, (12, 2))
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst), 5000.0)
    points = rng.uniform(0, 3000, (40, 2))
    np.testing.assert_allclose(
        tps.inverse().transform_points(torch.tensor(points)).numpy(), scipy_tps(dst, src, 5000.0)(points), atol=1e-8
    )


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, True, "1", None])
def test_regularization_must_be_a_finite_number(value):
    src, dst = control_points()
    with pytest.raises(wk.DegenerateInputError, match="regularization: expected a finite number >= 0"):
        wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst), value)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_extreme_coordinates_raise_a_warpkit_error_or_fit(scale):
    src, dst = control_points()
    try:
        tps = wk.ThinPlateSpline.fit(torch.tensor(src) * scale, torch.tensor(dst) * scale)
    except wk.WarpkitError:
        return
    mapped = tps.transform_points(torch.tensor(src) * scale)
    np.testing.assert_allclose(mapped.numpy() / scale, dst, atol=1e-6)


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
    ours = tps.inverse().transform_points(torch.tensor(points))
    for b, (s, d) in enumerate(pairs):
        np.testing.assert_allclose(ours[b].numpy(), scipy_tps(d, s, 1.0)(points), atol=1e-9)


def test_float32_points_give_float32_with_float64_accuracy():
    src, dst = control_points(seed=6)
    tps = wk.ThinPlateSpline.fit(torch.tensor(src, dtype=torch.float32), torch.tensor(dst, dtype=torch.float32))
    points = np.random.default_rng(7).uniform(0, 64, (50, 2)).astype(np.float32)
    ours = tps.inverse().transform_points(torch.tensor(points))
    assert ours.dtype == torch.float32 and tps.transform_points(torch.tensor(points)).dtype == torch.float32
    reference = scipy_tps(dst.astype(np.float32).astype(np.float64), src.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(ours.numpy(), reference(points.astype(np.float64)), atol=2e-5)


# --- grids and warps ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spline_and_grid():
    src, dst = control_points(seed=8, k=10, jitter=2.0)  # jitter 4 folds this one over
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    return src, dst, tps, tps.grid(OUT_SIZE)


def test_grid_is_scipys_destination_to_source_spline_at_the_pixel_centres(spline_and_grid):
    """The grid is the native map, in closed form: no per-pixel solve."""
    src, dst, _, grid = spline_and_grid
    assert grid.shape == (1, *OUT_SIZE, 2)
    np.testing.assert_allclose(grid[0].reshape(-1, 2).numpy(), scipy_tps(dst, src)(pixel_centres(OUT_SIZE)), atol=1e-9)


def test_grid_in_bands_equals_one_evaluation(monkeypatch):
    """Large grids are evaluated in row bands and point chunks (memory O(output)); the bands join exactly."""
    from warpkit.families import tps as tps_module

    src, dst = control_points(seed=32, k=7)
    tps = wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst))
    whole = tps.grid((37, 29))
    monkeypatch.setattr(tps_module, "CHUNK_ELEMENTS", 200)  # bands of one row, chunks of a few points
    torch.testing.assert_close(tps.grid((37, 29)), whole, atol=1e-12, rtol=0)
    np.testing.assert_allclose(whole[0].reshape(-1, 2).numpy(), scipy_tps(dst, src)(pixel_centres((37, 29))), atol=1e-9)
    points = torch.tensor(np.random.default_rng(33).uniform(0, 64, (1, 300, 2)))
    back = tps.transform_points(points)  # the Newton direction, chunked too
    np.testing.assert_allclose(scipy_tps(dst, src)(back[0].numpy()), points[0].numpy(), atol=1e-9)


def test_tps_warp_memory_is_bounded_by_the_output(tmp_path):
    """A 1500x1500 warp with 40 points: peak RSS growth a few times the output (it was hundreds of times)."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import resource, torch, numpy as np, warpkit as wk\n"
        "rng = np.random.default_rng(0)\n"
        "s = torch.tensor(rng.uniform(0, 1500, (40, 2))); d = s + torch.tensor(rng.uniform(-10, 10, (40, 2)))\n"
        "wk.warp(torch.rand(1, 3, 8, 8), wk.ThinPlateSpline.fit(s, d))\n"
        "image = torch.rand(1, 3, 1500, 1500)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = wk.warp(image, wk.ThinPlateSpline.fit(s, d))\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / (out.numel() * 4))\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    ratio = float(done.stdout.strip().splitlines()[-1])
    assert ratio < 25, f"peak grew by {ratio:.1f}x the output"  # measured 3-11x (allocator noise); it was 170-900x


def test_grid_and_transform_points_are_consistent(spline_and_grid):
    _, _, tps, grid = spline_and_grid
    centres = tps.transform_points(grid.reshape(1, -1, 2))
    ys, xs = torch.meshgrid(torch.arange(OUT_SIZE[0]), torch.arange(OUT_SIZE[1]), indexing="ij")
    torch.testing.assert_close(centres[0], torch.stack([xs, ys], -1).reshape(-1, 2).double(), atol=1e-6, rtol=0)
    # the reported Newton residual (fit splines are native destination -> source: points are solved)
    _, residual = tps.solve(grid.reshape(1, -1, 2).double())
    assert residual.shape == (1, OUT_SIZE[0] * OUT_SIZE[1]) and float(residual.max()) < 1e-6


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_warp_matches_cv2_remap_on_its_grid(image_np, image, spline_and_grid, interpolation, padding):
    *_, tps, grid = spline_and_grid
    ours = wk.warp(image, tps, OUT_SIZE, interpolation=interpolation, padding=padding, fill=FILL)
    g = grid[0].float().numpy()
    reference = cv2.remap(
        image_np,
        g[..., 0].copy(),
        g[..., 1].copy(),
        CV2_INTERP[interpolation],
        borderMode=CV2_BORDER[padding],
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
    tps = wk.ThinPlateSpline.from_params(
        torch.tensor(params.reshape(1, -1)), image_np.shape[:2], OUT_SIZE, align_corners=align_corners
    )
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
    reference = cv2.remap(
        image_np,
        *[expected[..., i].astype(np.float32) for i in (0, 1)],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
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
    moved = cv2.transform(points[None], m)[0]  # affine first, then the spline (whose inverse is scipy's)
    for t in (composed, tps @ affine):
        np.testing.assert_allclose(
            scipy_tps(dst, src)(t.transform_points(torch.tensor(points)).numpy()), moved, atol=1e-9
        )
    # grid: each destination pixel reads affine^-1(tps^-1(q)), both in closed form
    grid = composed.grid(OUT_SIZE)[0].reshape(-1, 2).numpy()
    expected = cv2.transform(scipy_tps(dst, src)(pixel_centres(OUT_SIZE))[None], cv2.invertAffineTransform(m))[0]
    np.testing.assert_allclose(grid, expected, atol=1e-9)
    g = grid.reshape(*OUT_SIZE, 2).astype(np.float32)
    ours = wk.warp(image, composed, OUT_SIZE, interpolation="bicubic", padding="reflect101")
    reference = cv2.remap(
        image_np, g[..., 0].copy(), g[..., 1].copy(), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )
    assert_matches(to_numpy(ours), reference, "bicubic")


def test_folding_spline_warns_about_convergence():
    src = np.array([[0.0, 0], [10, 0], [0, 10], [10, 10], [5, 5]])
    dst = src.copy()
    dst[4] = [30.0, 30.0]  # drags the centre past a corner: the map folds over
    tps = wk.ThinPlateSpline.fit(torch.tensor(dst), torch.tensor(src)).inverse()  # native source -> destination
    with pytest.warns(wk.ConvergenceWarning):
        tps.grid((40, 40))
    with pytest.warns(wk.ConvergenceWarning):  # the fitted direction folds too; its points are solved
        wk.ThinPlateSpline.fit(torch.tensor(src), torch.tensor(dst)).transform_points(
            torch.tensor(pixel_centres((40, 40)))
        )


def test_smooth_spline_does_not_warn(spline_and_grid):
    *_, tps, _ = spline_and_grid
    with warnings.catch_warnings():
        warnings.simplefilter("error", wk.ConvergenceWarning)
        tps.transform_points(tps.grid((10, 12)).reshape(1, -1, 2))


# --- estimation (fit) with noise and weights ---------------------------------------------------


def test_estimate_with_regularization_and_weights_matches_weighted_system():
    """Per-point weights scale the regularisation: scipy gets ``smoothing = lambda / weights``."""
    src, dst = control_points(seed=15, k=12, jitter=5.0)
    weights = np.random.default_rng(16).uniform(0.5, 3.0, 12)
    tps = wk.ThinPlateSpline.estimate(torch.tensor(src), torch.tensor(dst), torch.tensor(weights), regularization=4.0)
    points = np.random.default_rng(17).uniform(0, 64, (40, 2))
    reference = scipy_tps(dst, src, 4.0 / weights)(points)
    np.testing.assert_allclose(tps.inverse().transform_points(torch.tensor(points)).numpy(), reference, atol=1e-9)


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


def test_gradients_through_chunked_evaluation_match_one_evaluation(monkeypatch):
    """With gradients, chunks are recomputed in the backward pass (checkpointing): same gradients, and gradcheck."""
    from warpkit.families import tps as tps_module

    src, dst = (torch.tensor(a) for a in control_points(seed=34, k=6))
    weights = torch.rand(1, 9, 11, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(35))

    def loss(d):
        return (wk.ThinPlateSpline.fit(src, d).grid((9, 11)) * weights).sum()

    d = dst.clone().requires_grad_()
    (expected,) = torch.autograd.grad(loss(d), [d])
    monkeypatch.setattr(tps_module, "CHUNK_ELEMENTS", 64)  # bands of a row, chunks of a few points
    d = dst.clone().requires_grad_()
    (chunked,) = torch.autograd.grad(loss(d), [d])
    torch.testing.assert_close(chunked, expected, atol=1e-10, rtol=0)
    assert torch.autograd.gradcheck(
        lambda d: wk.ThinPlateSpline.fit(src, d).grid((3, 4)), (dst.clone().requires_grad_(),)
    )
