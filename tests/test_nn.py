"""warpkit.nn: Warp and SpatialTransformer against torch's affine_grid/grid_sample, scipy's TPS and OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import real_image, to_numpy, to_torch
from scipy.interpolate import RBFInterpolator
from torch import nn

import warpkit as wk

FAMILIES = ("affine", "projective", "tps")


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """``(2, 3, 24, 30)`` float64: two crops of a real photograph."""
    image = real_image((48, 60))
    return torch.cat([to_torch(image[:24, :30]), to_torch(image[24:, 30:])]).double()


def random_params(family: str, batch: int, scale: float = 0.1, seed: int = 0) -> torch.Tensor:
    cls = wk.get_family(family)
    noise = torch.randn(batch, cls.num_params, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if family == "projective":
        noise[:, 6:] *= 0.2  # keep the horizon far away
    return cls.identity_params(batch, dtype=torch.float64) + scale * noise


def normalised_centres(size, align_corners) -> np.ndarray:
    """``(H * W, 2)`` pixel centres in torch's [-1, 1] frame, computed independently in numpy."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    if align_corners:
        xs, ys = xs / (w - 1) * 2 - 1, ys / (h - 1) * 2 - 1
    else:
        xs, ys = (2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def grid_sample(image: torch.Tensor, normalised_grid: np.ndarray, size, align_corners) -> torch.Tensor:
    """torch's own sampler on a ``(B, H * W, 2)`` normalised numpy grid."""
    grid = torch.from_numpy(normalised_grid).reshape(image.shape[0], *size, 2).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


# --- the warp against independent references ------------------------------------------------------------
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("output_size", [(24, 30), (17, 40)])
def test_affine_warp_matches_affine_grid_and_grid_sample(photo, align_corners, output_size):
    theta = random_params("affine", 2, 0.15)
    ours = wk.nn.Warp("affine", output_size, align_corners=align_corners)(photo, theta)
    grid = F.affine_grid(theta.reshape(2, 2, 3), (2, 3, *output_size), align_corners=align_corners)
    reference = F.grid_sample(photo, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    assert (ours - reference).abs().max() < 1e-9


@pytest.mark.parametrize("align_corners", [False, True])
def test_projective_warp_matches_numpy_homography_and_grid_sample(photo, align_corners):
    params = random_params("projective", 2, 0.1)
    size = (20, 26)
    theta = np.concatenate([params.numpy(), np.ones((2, 1))], axis=1).reshape(2, 3, 3)
    centres = np.concatenate([normalised_centres(size, align_corners), np.ones((20 * 26, 1))], axis=1)
    mapped = np.einsum("bij,nj->bni", theta, centres)
    reference = grid_sample(photo, mapped[..., :2] / mapped[..., 2:], size, align_corners)
    ours = wk.nn.Warp("projective", size, align_corners=align_corners)(photo, params)
    assert (ours - reference).abs().max() < 1e-9


@pytest.mark.parametrize("grid_side", [4, 3])
def test_tps_warp_matches_scipy_thin_plate_spline(photo, grid_side):
    class SmallTPS(wk.ThinPlateSpline):  # a 3 x 3 control grid
        num_params = 2 * grid_side**2

    size = (22, 19)
    line = np.linspace(-1, 1, grid_side)
    control = np.stack(np.meshgrid(line, line, indexing="xy"), axis=-1).reshape(-1, 2)  # row-major (x, y)
    noise = 0.1 * torch.randn(2, 2 * grid_side**2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = torch.from_numpy(control).reshape(1, -1) + noise
    centres = normalised_centres(size, False)
    mapped = np.stack(
        [RBFInterpolator(control, p.reshape(-1, 2), kernel="thin_plate_spline")(centres) for p in params.numpy()]
    )
    reference = grid_sample(photo, mapped, size, False)
    warp = wk.nn.Warp(wk.ThinPlateSpline if grid_side == 4 else SmallTPS, size)
    assert (warp(photo, params) - reference).abs().max() < 1e-9


@pytest.mark.parametrize("family", FAMILIES)
def test_closed_form_grid_equals_the_familys_own_from_params(family):
    params = random_params(family, 3)
    warp = wk.nn.Warp(family, (13, 21), align_corners=False)
    expected = wk.get_family(family).from_params(params, (18, 15), (13, 21)).grid((13, 21))
    assert (warp.grid(params, (18, 15)) - expected).abs().max() < 1e-9


def test_a_family_without_closed_form_goes_through_from_params(photo):
    class OtherAffine(wk.Affine):  # a plugin-like family: same parameters, not special-cased
        name = "other-affine"

    theta = random_params("affine", 2, 0.15)
    ours = wk.nn.Warp(OtherAffine, (20, 20))(photo, theta)
    grid = F.affine_grid(theta.reshape(2, 2, 3), (2, 3, 20, 20), align_corners=False)
    reference = F.grid_sample(photo, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert (ours - reference).abs().max() < 1e-9


# --- the spatial transformer ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_spatial_transformer_starts_as_identity(family, photo):
    stn = wk.nn.SpatialTransformer(3, (24, 30), family).double()
    assert torch.count_nonzero(stn.head.weight) == 0
    assert torch.equal(stn.head.bias, wk.get_family(family).identity_params(1)[0].double())
    assert (stn(photo) - photo).abs().max() < 1e-6  # the bias was rounded to float32 (TPS holds 1/3)


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_to_a_smaller_output_is_cv2_resize(family):
    image = real_image((36, 48))
    stn = wk.nn.SpatialTransformer(3, (36, 48), family, output_size=(18, 20))
    ours = to_numpy(stn(to_torch(image)))
    reference = cv2.resize(image, (20, 18), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours - reference).max() < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_return_transform_is_the_familys_transform_of_the_predicted_params(family, photo):
    stn = wk.nn.SpatialTransformer(3, (24, 30), family, output_size=(16, 16)).double()
    with torch.no_grad():
        stn.head.weight.normal_(0, 0.01, generator=torch.Generator().manual_seed(2))
    out, transform = stn(photo, return_transform=True)
    assert isinstance(transform, wk.get_family(family)) and transform.batch_size == 2
    assert (wk.warp(photo, transform, (16, 16)) - out).abs().max() < 1e-9


@pytest.mark.parametrize("family", FAMILIES)
def test_params_gradcheck(family):
    image = torch.rand(1, 2, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    params = random_params(family, 1, 0.07, seed=4).requires_grad_()
    warp = wk.nn.Warp(family, (5, 6))
    assert torch.autograd.gradcheck(lambda p: warp(image, p), (params,))


def test_training_signal_reaches_the_localisation_network():
    stn = wk.nn.SpatialTransformer(1, (16, 16), "affine")
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    (stn(x) * torch.linspace(0, 1, 16)).mean().backward()
    assert stn.head.weight.grad.abs().sum() > 0 and torch.isfinite(stn.head.weight.grad).all()
    torch.optim.SGD(stn.parameters(), lr=0.01).step()
    stn.zero_grad()
    stn(x).mean().backward()
    assert stn.localization[0].weight.grad.abs().sum() > 0


def test_custom_localization_sets_the_head_width():
    loc = nn.Sequential(nn.Flatten(), nn.Linear(2 * 10 * 12, 7), nn.Tanh())
    stn = wk.nn.SpatialTransformer(2, (10, 12), "projective", localization=loc)
    assert (stn.head.in_features, stn.head.out_features) == (7, 8)
    assert stn(torch.rand(3, 2, 10, 12)).shape == (3, 2, 10, 12)


def test_state_dict_round_trip_and_dtype_moves():
    stn = wk.nn.SpatialTransformer(1, (12, 12), "tps", output_size=(8, 9))
    with torch.no_grad():
        stn.head.weight.normal_(0, 0.05)
    copy = wk.nn.SpatialTransformer(1, (12, 12), "tps", output_size=(8, 9))
    copy.load_state_dict(stn.state_dict())
    x = torch.rand(2, 1, 12, 12)
    assert torch.equal(stn(x), copy(x))
    assert stn.double()(x.double()).dtype == torch.float64


def test_extra_repr_echoes_the_arguments():
    text = repr(wk.nn.SpatialTransformer(1, (12, 12), "tps", output_size=(8, 9), padding="border"))
    assert "input_size=(12, 12)" in text
    assert (
        "family='tps', output_size=(8, 9), align_corners=False, interpolation='bilinear', padding='replicate'" in text
    )


# --- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [(2, 3, 16, 16), (1, 16, 16), (2, 1, 16, 17), (2, 1, 1, 16, 16)],
    ids=["channels", "rank3", "size", "rank5"],
)
def test_wrong_input_shape_names_the_module_and_the_expected_shape(shape):
    stn = wk.nn.SpatialTransformer(1, (16, 16))
    with pytest.raises(wk.ShapeError, match=r"SpatialTransformer: input: expected shape \(B, 1, 16, 16\), got"):
        stn(torch.zeros(shape))


def test_warp_refuses_bad_shapes():
    warp = wk.nn.Warp("affine")
    with pytest.raises(wk.ShapeError, match=r"Warp: input: expected shape \(B, C, H, W\), got \(3, 8, 8\)"):
        warp(torch.zeros(3, 8, 8), torch.zeros(1, 6))
    with pytest.raises(wk.ShapeError, match=r"Warp: params: expected shape \(B, 6\), got \(1, 8\)"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8))


def test_family_without_stn_parameters_is_refused_with_the_reason():
    with pytest.raises(wk.WarpkitError, match="Composed has no STN parameter vector .num_params is None."):
        wk.nn.SpatialTransformer(1, (16, 16), wk.Composed)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(family="nope"), wk.UnknownFamilyError, "expected one of .*affine"),
        (dict(family=int), wk.WarpkitError, "family: expected a family name or a warpkit.Transform subclass"),
        (dict(interpolation="area"), wk.ModeError, "interpolation: expected one of"),
        (dict(in_channels=0), wk.WarpkitError, "in_channels: expected a positive int, got 0"),
        (dict(input_size=(2, 16)), wk.ShapeError, "default localization needs H and W >= 4"),
        (dict(localization=nn.Identity()), wk.ShapeError, r"localization: expected an output of shape \(B, F\)"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, message):
    arguments = dict(in_channels=1, input_size=(16, 16)) | kwargs
    with pytest.raises(error, match=message):
        wk.nn.SpatialTransformer(**arguments)


def test_spatial_transformer_with_a_plugin_family_matches_affine_grid():
    # a plugin family through the module: attention's parameters are the STN paper's theta (s, tx, ty)
    if "attention" not in wk.families():
        pytest.skip("warpkit-similarity is not installed")
    warp = wk.nn.Warp("attention")
    image = torch.rand(2, 3, 12, 16, dtype=torch.float64)
    params = torch.tensor([[0.8, 0.1, -0.2], [1.1, -0.05, 0.3]], dtype=torch.float64)
    theta = torch.zeros(2, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = params[:, 0]
    theta[:, :, 2] = params[:, 1:]
    grid = torch.nn.functional.affine_grid(theta, (2, 3, 12, 16), align_corners=False)
    expected = torch.nn.functional.grid_sample(image, grid, align_corners=False)
    torch.testing.assert_close(warp(image, params), expected, atol=1e-9, rtol=0)
