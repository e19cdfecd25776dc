"""wk.warp(..., antialias=True): held to a float64 supersampled ground truth and to cv2 / torch / Pillow resizes.

The ground truth here is written apart from warpkit's samplers: every output pixel is cut into k x k
sub-pixels, each mapped by the transform's exact destination -> source map and read from the
bilinear-reconstructed source by ``scipy.ndimage.map_coordinates(order=1)`` with the matching border mode,
then averaged (the area average of the output pixel over the continuous image).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import warpkit as wk
from warpkit._antialias import grid_differences, source_jacobian

ndi = pytest.importorskip("scipy.ndimage")

INTERPOLATIONS = ["nearest", "bilinear", "bicubic"]
PADDINGS = ["zeros", "constant", "replicate", "reflect", "reflect101", "wrap"]
# warpkit padding -> scipy.ndimage.map_coordinates mode (CROSS-LIBRARY.md)
SCIPY_MODES = {
    "zeros": "grid-constant",
    "constant": "grid-constant",
    "replicate": "nearest",
    "reflect": "reflect",
    "reflect101": "mirror",
    "wrap": "grid-wrap",
}
FILL = 0.3


def zone_plate(n: int) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return 0.5 + 0.5 * np.cos(np.pi * ((x - n / 2) ** 2 + (y - n / 2) ** 2) / n)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return data.camera()[96:352, 128:384].astype(np.float64) / 255  # 256 x 256: the man and the camera


def ground_truth(img, transform, size, samples=16, padding="zeros", fill=0.0) -> np.ndarray:
    height, width = size
    k = samples
    up = wk.Affine(torch.tensor([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2]], dtype=torch.float64))
    grid = transform.then(up).grid((height * k, width * k))[0].double().numpy()
    cval = fill if padding == "constant" else 0.0
    values = ndi.map_coordinates(img, [grid[..., 1], grid[..., 0]], order=1, mode=SCIPY_MODES[padding], cval=cval)
    return values.reshape(height, k, width, k).mean(axis=(1, 3))


def psnr(a, b, mask=None) -> float:
    d = (np.asarray(a, np.float64) - b) ** 2
    return float(10 * np.log10(1 / (d[mask] if mask is not None else d).mean()))


def as_tensor(img: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(img, dtype=dtype)[None, None]


def warps(img, transform, size, **kw) -> tuple[np.ndarray, np.ndarray]:
    t = as_tensor(img)
    plain = wk.warp(t, transform, size, **kw)[0, 0].double().numpy()
    aa = wk.warp(t, transform, size, antialias=True, **kw)[0, 0].double().numpy()
    return plain, aa


def rotation(n: int, shrink: float, degrees: float, out: int | None = None) -> tuple[wk.Affine, tuple[int, int]]:
    out = out or round(n / shrink)
    c, s = math.cos(math.radians(degrees)) / shrink, math.sin(math.radians(degrees)) / shrink
    ci, co = (n - 1) / 2, (out - 1) / 2
    m = [[c, -s, co - c * ci + s * ci], [s, c, co - s * ci - c * ci]]
    return wk.Affine(torch.tensor(m, dtype=torch.float64)), (out, out)


def scaling(n: int, out: int) -> wk.Affine:
    s = out / n
    return wk.Affine(torch.tensor([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5]], dtype=torch.float64))


def largest_stretch(transform, size) -> np.ndarray:
    g = transform.grid(size)[0].double().numpy()
    j = np.stack([np.gradient(g, axis=1), np.gradient(g, axis=0)], axis=-1)
    return np.linalg.svd(j, compute_uv=False)[..., 0]


# --- where the warp magnifies: the plain warp, bit for bit ------------------------------------------
def _magnifiers():
    src = torch.tensor([[0.0, 0], [20, 0], [0, 16], [20, 16], [9, 7]], dtype=torch.float64)
    dst = src * 1.6 + torch.tensor([[0.0, 0], [0.5, 0], [0, -0.5], [0.3, 0.2], [0.4, -0.3]], dtype=torch.float64)
    yield "affine", wk.Affine(torch.tensor([[1.3, 0.4, -2.0], [-0.4, 1.3, 1.5]]))
    yield "projective", wk.Projective(torch.tensor([[1.5, 0.1, 0.0], [0.0, 1.4, 0.0], [1e-3, 0.0, 1.0]]))
    yield "tps", wk.ThinPlateSpline.fit(src, dst)
    yield "composed", wk.Composed([wk.ThinPlateSpline.fit(src, dst), wk.Affine(torch.tensor([[1.0, 0, 1], [0, 1, 2]]))])


@pytest.mark.parametrize("interpolation,padding", list(itertools.product(INTERPOLATIONS, PADDINGS)))
@pytest.mark.parametrize("name,transform", list(_magnifiers()), ids=[n for n, _ in _magnifiers()])
def test_magnifying_warp_is_the_plain_warp_exactly(name, transform, interpolation, padding):
    image = torch.rand(2, 3, 21, 17, generator=torch.Generator().manual_seed(0))
    kw = dict(interpolation=interpolation, padding=padding, fill=FILL)
    plain = wk.warp(image, transform, (30, 26), **kw)
    assert torch.equal(wk.warp(image, transform, (30, 26), antialias=True, **kw), plain)


def test_pixels_that_magnify_keep_the_plain_value_in_a_mixed_warp():
    # a tilt: the near side magnifies, the far side shrinks
    transform = wk.Projective.estimate(
        torch.tensor([[0.0, 0], [63, 0], [63, 63], [0, 63]]), torch.tensor([[40.0, 0], [56, 0], [95, 95], [0, 95]])
    )
    image = torch.rand(1, 2, 64, 64, generator=torch.Generator().manual_seed(1))
    plain = wk.warp(image, transform, (96, 96))
    aa = wk.warp(image, transform, (96, 96), antialias=True)
    stretch = torch.tensor(largest_stretch(transform, (96, 96)))
    magnify, shrink = stretch < 0.95, stretch > 1.5
    assert magnify.any() and shrink.any()
    assert torch.equal(aa[..., magnify], plain[..., magnify])
    assert (aa[..., shrink] - plain[..., shrink]).abs().max() > 0.05


# --- pure downscaling against cv2 / torch / Pillow and the ground truth -------------------------------
@pytest.mark.parametrize("shrink", [2, 3, 4, 8, 2.5, 3.7])
@pytest.mark.parametrize("image", ["zone", "photo"])
def test_downscaling_is_as_close_to_ground_truth_as_the_best_resize(shrink, image, photo):
    cv2 = pytest.importorskip("cv2")
    img = zone_plate(256) if image == "zone" else photo
    n = img.shape[0]
    out = round(n / shrink)
    transform = scaling(n, out)
    truth = ground_truth(img, transform, (out, out), max(12, math.ceil(4 * n / out)))
    plain, aa = warps(img, transform, (out, out))
    t = torch.tensor(img)[None, None]
    references = {
        "cv2 INTER_AREA": cv2.resize(img.astype(np.float32), (out, out), interpolation=cv2.INTER_AREA),
        "interpolate bilinear antialias": torch.nn.functional.interpolate(
            t, size=(out, out), mode="bilinear", antialias=True
        )[0, 0].numpy(),
        "interpolate bicubic antialias": torch.nn.functional.interpolate(
            t, size=(out, out), mode="bicubic", antialias=True
        )[0, 0].numpy(),
    }
    best = max(psnr(r, truth) for r in references.values())
    assert psnr(aa, truth) >= best - 0.05, {k: psnr(r, truth) for k, r in references.items()} | {"aa": psnr(aa, truth)}
    assert psnr(aa, truth) >= psnr(plain, truth)


@pytest.mark.parametrize("shrink", [2, 4])
def test_downscaling_by_a_power_of_two_is_close_to_inter_area_and_pillow(shrink, photo):
    cv2 = pytest.importorskip("cv2")
    image_module = pytest.importorskip("PIL.Image")
    out = photo.shape[0] // shrink
    _, aa = warps(photo, scaling(photo.shape[0], out), (out, out))
    area = cv2.resize(photo.astype(np.float32), (out, out), interpolation=cv2.INTER_AREA)
    pil = np.asarray(image_module.fromarray(photo.astype(np.float32), mode="F").resize((out, out), image_module.BOX))
    # both are the box average; the antialiased warp also averages the bilinear reconstruction (a little wider)
    assert np.abs(aa - area).mean() < 0.01 and np.abs(aa - pil).mean() < 0.01


# --- general warps against the ground truth ------------------------------------------------------------
@pytest.mark.parametrize("shrink", [1.5, 2, 4, 6])
@pytest.mark.parametrize("image", ["zone", "photo"])
def test_rotation_with_shrink(shrink, image, photo):
    img = zone_plate(256) if image == "zone" else photo
    transform, size = rotation(img.shape[0], shrink, 30)
    truth = ground_truth(img, transform, size, max(12, math.ceil(4 * shrink)))
    plain, aa = warps(img, transform, size)
    gain = psnr(aa, truth) - psnr(plain, truth)
    assert gain >= (10 if shrink >= 4 else 0.5), gain


def _tilt(n):
    e = -0.5
    out = n // 2
    src = torch.tensor([[e, e], [n + e, e], [n + e, n + e], [e, n + e]], dtype=torch.float64)
    dst = torch.tensor([[0.375 * out, e], [0.625 * out, e], [out + e, out + e], [e, out + e]], dtype=torch.float64)
    return wk.Projective.estimate(src, dst), (out, out)


def _compression(n):
    out = n // 2
    centre, radius = torch.tensor([0.3 * out, 0.35 * out], dtype=torch.float64), 0.12 * out
    ticks = torch.linspace(-0.5, out - 0.5, 7, dtype=torch.float64)
    d = torch.stack(torch.meshgrid(ticks, ticks, indexing="xy"), -1).reshape(-1, 2)
    ring = torch.tensor([[0.0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=torch.float64)
    d = torch.cat([d, centre + radius * ring])
    s = 2 * d + 0.5 + 4 * (d - centre) * torch.exp(-((d - centre) ** 2).sum(-1, keepdim=True) / (2 * radius**2))
    return wk.ThinPlateSpline.fit(s, d), (out, out)  # T(s_i) = d_i: its grid is the spline d -> s


@pytest.mark.parametrize("case", ["tilt", "tps"])
@pytest.mark.parametrize("image", ["zone", "photo"])
def test_strong_local_shrink_gains_ten_db_where_it_shrinks_4x(case, image, photo):
    img = zone_plate(192) if image == "zone" else photo[::-1][32:224, 32:224].copy()
    transform, size = (_tilt if case == "tilt" else _compression)(img.shape[0])
    stretch = largest_stretch(transform, size)
    shrunk = stretch >= 4
    assert shrunk.mean() > 0.02 and stretch.max() > 5.5
    truth = ground_truth(img, transform, size, 24)  # 2.5+ samples per source pixel at the far side
    plain, aa = warps(img, transform, size)
    assert psnr(aa, truth, shrunk) - psnr(plain, truth, shrunk) >= 10
    assert psnr(aa, truth) >= psnr(plain, truth)


@pytest.mark.parametrize("padding", PADDINGS)
def test_every_padding_rule_holds_on_the_prefiltered_levels(padding):
    # a 4x rotation that reaches well outside the image: the footprint average includes the border rule
    img = zone_plate(96)
    transform, size = rotation(96, 4, 30, out=40)
    truth = ground_truth(img, transform, size, 16, padding, FILL)
    plain, aa = warps(img, transform, size, padding=padding, fill=FILL)
    # replicate: a level repeats its own edge pixel, the average of 2^k rows, not the edge row alone; on
    # the zone plate (full-contrast detail right at the edge) outside the image that gains only ~1 dB
    assert psnr(aa, truth) - psnr(plain, truth) >= (0.5 if padding == "replicate" else 10)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_every_interpolation_is_filtered(interpolation):
    img = zone_plate(128)
    transform, size = rotation(128, 4, 30)
    truth = ground_truth(img, transform, size)
    plain, aa = warps(img, transform, size, interpolation=interpolation)
    assert psnr(aa, truth) - psnr(plain, truth) >= 8


def test_constant_padding_reads_fill_far_outside():
    image = torch.rand(1, 3, 64, 64)
    transform = wk.Affine(torch.tensor([[0.25, 0.0, 40.0], [0.0, 0.25, 40.0]]))  # the image lands at 40..56
    out = wk.warp(image, transform, (64, 64), padding="constant", fill=(0.1, 0.2, 0.3), antialias=True)
    assert torch.allclose(out[0, :, :30, :30], torch.tensor([0.1, 0.2, 0.3]).reshape(3, 1, 1), atol=1e-6)


# --- shapes, batches, dtypes -----------------------------------------------------------------------------
def test_unbatched_and_broadcast_batches():
    transform = wk.Affine(torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.3, 0.0]]))
    image = torch.rand(3, 40, 40)
    assert wk.warp(image, transform, (12, 12), antialias=True).shape == (3, 12, 12)
    two = wk.Affine(torch.stack([transform.matrix[0, :2], transform.matrix[0, :2] * 0.5]))
    out = wk.warp(image[None], two, (12, 12), antialias=True)
    assert out.shape == (2, 3, 12, 12)
    assert torch.allclose(out[0], wk.warp(image, transform, (12, 12), antialias=True))
    batch = torch.rand(4, 3, 40, 40)
    out = wk.warp(batch, transform, (12, 12), antialias=True)
    assert torch.allclose(out[2], wk.warp(batch[2], transform, (12, 12), antialias=True))


def test_float64_and_float32_agree():
    image = torch.rand(1, 2, 50, 50, dtype=torch.float64)
    transform, size = rotation(50, 3, 20)
    a = wk.warp(image, transform, size, antialias=True)
    b = wk.warp(image.float(), wk.Affine(transform.matrix[:, :2].float()), size, antialias=True)
    assert a.dtype == torch.float64 and b.dtype == torch.float32
    assert (a - b).abs().max() < 1e-4


# --- Jacobians -------------------------------------------------------------------------------------------
def test_closed_form_jacobian_matches_finite_differences():
    h = torch.tensor([[0.6, 0.1, 3.0], [0.05, 0.7, 2.0], [2e-3, 1e-3, 1.0]], dtype=torch.float64)
    grid, jac = source_jacobian(wk.Projective(h), (30, 40))
    assert torch.allclose(jac, grid_differences(grid), rtol=1e-2, atol=1e-3)  # differences are 2nd order
    grid, jac = source_jacobian(wk.Affine(h[:2]), (30, 40))
    assert jac.shape == (1, 1, 1, 2, 2)
    assert torch.allclose(jac.expand(1, 30, 40, 2, 2), grid_differences(grid), atol=1e-10)


class _NoMatrix(wk.Transform):
    """A family without a matrix form (like a plugin), wrapping an affine map; optionally with a Jacobian."""

    calls: list = []

    def __init__(self, inner):
        self.inner = inner

    batch_size = property(lambda self: self.inner.batch_size)
    dtype = property(lambda self: self.inner.dtype)
    device = property(lambda self: self.inner.device)

    def map_points(self, points):
        return self.inner.map_points(points)

    def inverse(self):
        return type(self)(self.inner.inverse())


class _WithJacobian(_NoMatrix):
    def grid_jacobian(self, size):
        _WithJacobian.calls.append(size)
        return source_jacobian(self.inner, size)[1].expand(self.batch_size, *size, 2, 2)


@pytest.mark.parametrize("family", [_NoMatrix, _WithJacobian])
def test_families_without_a_matrix_use_their_jacobian_or_finite_differences(family):
    image = torch.rand(1, 2, 60, 60, dtype=torch.float64)
    inner, size = rotation(60, 3, 25)
    out = wk.warp(image, family(inner), size, antialias=True)
    assert torch.allclose(out, wk.warp(image, inner, size, antialias=True), atol=1e-9)
    assert bool(_WithJacobian.calls) == (family is _WithJacobian)


# --- gradients -------------------------------------------------------------------------------------------
def test_gradcheck_image_and_affine_parameters():
    image = torch.rand(1, 1, 9, 10, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[0.38, -0.2013, 0.31], [0.21, 0.4, 0.27]], dtype=torch.float64, requires_grad=True)
    f = lambda im, mm: wk.warp(im, wk.Affine(mm), (4, 4), padding="reflect", antialias=True)  # noqa: E731
    assert torch.autograd.gradcheck(f, (image, m), eps=1e-6, atol=1e-6)


def test_gradcheck_projective_and_tps():
    image = torch.rand(1, 1, 10, 12, dtype=torch.float64, requires_grad=True)
    h = torch.tensor([[0.5, 0.1, 0.3], [0.05, 0.6, 0.2], [0.02, 0.01, 1]], dtype=torch.float64, requires_grad=True)
    f = lambda im, hh: wk.warp(im, wk.Projective(hh), (6, 7), antialias=True)  # noqa: E731
    assert torch.autograd.gradcheck(f, (image, h), eps=1e-6, atol=1e-6)
    src = torch.tensor([[0.0, 0], [11, 0], [0, 9], [11, 9], [5, 4]], dtype=torch.float64)
    dst = (
        src * 0.4 + torch.tensor([[0.1, 0.2], [0.3, 0.1], [0.2, 0.0], [0.1, 0.3], [0.25, 0.15]], dtype=torch.float64)
    ).requires_grad_()

    def g(im, d):
        tps = wk.ThinPlateSpline.fit(src, d)
        return wk.warp(im, tps, (5, 6), interpolation="bicubic", padding="replicate", antialias=True)

    assert torch.autograd.gradcheck(g, (image, dst), eps=1e-6, atol=1e-6)


# --- the flag on the nn modules and the command line -------------------------------------------------------
def test_nn_warp_and_spatial_transformer_take_the_flag():
    image = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    theta = torch.tensor([[[1.0, 0.2, 0.1], [-0.2, 1.0, 0.0]], [[0.9, 0.0, 0.0], [0.0, 1.1, 0.05]]])
    module = wk.nn.Warp("affine", output_size=(10, 10), antialias=True)  # 4x smaller: shrinks
    params = theta.reshape(2, 6).requires_grad_()
    out = module(image, params)
    expected = wk.warp(image, module.transform(params, (40, 40)), (10, 10), antialias=True)
    assert torch.allclose(out, expected, atol=1e-5)
    out.sum().backward()
    assert params.grad is not None and torch.isfinite(params.grad).all() and params.grad.abs().sum() > 0
    assert "antialias=True" in repr(module)
    stn = wk.nn.SpatialTransformer(3, (40, 40), output_size=(80, 80), antialias=True)  # identity: magnifies 2x
    plain = wk.nn.SpatialTransformer(3, (40, 40), output_size=(80, 80))
    plain.load_state_dict(stn.state_dict())
    assert stn.warp.antialias and torch.equal(stn(image), plain(image))


def test_cli_warp_antialias(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from warpkit.cli import main

    source = np.round(zone_plate(64) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), source)
    args = [
        "warp",
        str(tmp_path / "in.png"),
        str(tmp_path / "out.png"),
        "--matrix",
        "0.25,0,-0.375,0,0.25,-0.375",
        "--size",
        "16x16",
        "--force",
    ]
    assert main([*args, "--antialias"]) == 0
    result = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED).astype(np.float64)
    transform = wk.Affine(torch.tensor([[0.25, 0, -0.375], [0, 0.25, -0.375]]))
    image = torch.tensor(source, dtype=torch.float32)[None]
    expected = wk.warp(image, transform, (16, 16), antialias=True)[0].numpy()
    assert np.abs(result - expected).max() <= 1  # uint8 rounding
    assert main(args) == 0
    plain = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED).astype(np.float64)
    assert np.abs(plain - expected).max() > 20  # the plain warp aliases
