"""The core's errors: class, built-in parent, and a message naming the argument and what came."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import warpkit as wk

IMAGE = torch.rand(1, 3, 8, 9)
GRID = torch.rand(1, 4, 5, 2) * 8


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: wk.sample(torch.rand(8, 9), GRID[0]), wk.ShapeError, ["image", "(8, 9)"]),
        (lambda: wk.sample(IMAGE, torch.rand(1, 4, 5, 3)), wk.ShapeError, ["grid", "(1, 4, 5, 3)"]),
        (lambda: wk.sample(IMAGE, GRID[0]), wk.ShapeError, ["grid", "(4, 5, 2)"]),
        (lambda: wk.sample(IMAGE.expand(3, -1, -1, -1), GRID.expand(2, -1, -1, -1)), wk.ShapeError, ["3", "2"]),
        (lambda: wk.sample(IMAGE, GRID, padding="constant", fill=(0.1, 0.2)), wk.ShapeError, ["fill", "3"]),
        (lambda: wk.warp(torch.rand(1, 1, 3, 8, 9), wk.Affine.identity()), wk.ShapeError, ["image"]),
        (lambda: wk.warp(IMAGE, wk.Affine.identity(), (8,)), wk.ShapeError, ["size"]),
        (lambda: wk.warp(IMAGE.expand(3, -1, -1, -1), wk.Affine.identity(2)), wk.ShapeError, ["3", "2"]),
        (lambda: wk.Affine(torch.eye(3)[:2, :2]), wk.ShapeError, ["matrix", "(2, 2)"]),
        (lambda: wk.Affine(torch.rand(3, 3) + 2), wk.ShapeError, ["matrix", "[0, 0, 1]"]),
        (lambda: wk.Projective(torch.rand(2, 3)), wk.ShapeError, ["matrix", "(2, 3)"]),
        (lambda: wk.Affine.identity().transform_points(torch.rand(5, 3)), wk.ShapeError, ["points", "(5, 3)"]),
        (lambda: wk.Affine.identity(2).transform_points(torch.rand(3, 5, 2)), wk.ShapeError, ["2", "3"]),
        (lambda: wk.Affine.from_params(torch.rand(1, 5), (8, 9)), wk.ShapeError, ["params", "(1, 5)"]),
        (lambda: wk.Projective.from_params(torch.rand(8), (8, 9)), wk.ShapeError, ["params", "(8,)"]),
        (lambda: wk.ThinPlateSpline.from_params(torch.rand(1, 10), (8, 9)), wk.ShapeError, ["params", "(1, 10)"]),
        (lambda: wk.Affine.estimate(torch.rand(5, 2), torch.rand(4, 2)), wk.ShapeError, ["dst", "5", "4"]),
        (lambda: wk.Affine.estimate(torch.rand(5, 2), torch.rand(5, 2), torch.rand(4)), wk.ShapeError, ["weights"]),
    ],
)
def test_shape_errors(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, (wk.WarpkitError, ValueError))
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    ("argument", "kwargs", "valid"),
    [
        ("interpolation", {"interpolation": "lanczos"}, ["'nearest'", "'bilinear'", "'bicubic'"]),
        (
            "padding",
            {"padding": "mirror"},
            ["'zeros'", "'constant'", "'replicate'", "'reflect'", "'reflect101'", "'wrap'"],
        ),
        ("padding", {"padding": 3}, ["'zeros'"]),
    ],
)
def test_unknown_modes_list_the_valid_ones(argument, kwargs, valid):
    for call in (lambda: wk.sample(IMAGE, GRID, **kwargs), lambda: wk.warp(IMAGE, wk.Affine.identity(), **kwargs)):
        with pytest.raises(wk.ModeError) as info:
            call()
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        assert message.startswith(argument) and all(name in message for name in valid), message


def test_torch_reflection_name_explains_itself():
    with pytest.raises(wk.ModeError, match="align_corners"):
        wk.sample(IMAGE, GRID, padding="reflection")


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool, torch.complex64])
def test_non_floating_images(dtype):
    image = torch.zeros(1, 3, 8, 9, dtype=dtype)
    for call in (lambda: wk.sample(image, GRID), lambda: wk.warp(image, wk.Affine.identity())):
        with pytest.raises(wk.DTypeError, match=rf"image: expected a floating dtype, got {dtype}") as info:
            call()
        assert isinstance(info.value, TypeError)


def test_numpy_image_is_refused():
    with pytest.raises(wk.DTypeError, match="image: expected a torch.Tensor, got ndarray"):
        wk.sample(np.zeros((1, 3, 8, 9), np.float32), GRID)


@pytest.mark.parametrize(
    "transform",
    [
        wk.Affine(torch.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])),
        wk.Affine(torch.zeros(2, 3)),
        wk.Projective(torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])),
        wk.Projective(torch.stack([torch.eye(3), torch.zeros(3, 3)])),
        wk.Affine(torch.tensor([[float("nan"), 0.0, 0.0], [0.0, 1.0, 0.0]])),
    ],
)
def test_singular_inverse(transform):
    with pytest.raises(wk.SingularMatrixError, match="matrix") as info:
        transform.inverse()
    assert isinstance(info.value, np.linalg.LinAlgError)
    with pytest.raises(wk.SingularMatrixError):
        wk.warp(IMAGE, transform)  # warping needs the inverse too


COLLINEAR = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [5.0, 5.0]])
DUPLICATE = torch.tensor([[1.0, 2.0]] * 5)
SPREAD = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [4.0, 6.0]])


@pytest.mark.parametrize(("family", "minimum"), [(wk.Affine, 3), (wk.Projective, 4), (wk.ThinPlateSpline, 3)])
def test_too_few_points(family, minimum):
    src = SPREAD[: minimum - 1]
    with pytest.raises(
        wk.DegenerateInputError, match=rf"src: expected at least {minimum} points, got {minimum - 1}"
    ) as info:
        family.estimate(src, src)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("family", [wk.Affine, wk.Projective, wk.ThinPlateSpline])
@pytest.mark.parametrize("points", [COLLINEAR, DUPLICATE], ids=["collinear", "duplicate"])
def test_degenerate_points(family, points):
    with pytest.raises(wk.DegenerateInputError, match="src"):
        family.estimate(points, points + 1)


def test_degenerate_batch_member_is_named():
    src = torch.stack([SPREAD, COLLINEAR])
    with pytest.raises(wk.DegenerateInputError, match="batch index 1"):
        wk.Affine.estimate(src, src)


def test_tps_duplicate_control_point_needs_regularization():
    src = torch.cat([SPREAD, SPREAD[:1]])
    dst = src + torch.rand(6, 2)
    with pytest.raises(wk.DegenerateInputError, match="regularization"):
        wk.ThinPlateSpline.fit(src, dst)
    wk.ThinPlateSpline.fit(src, dst, regularization=0.1)  # fine with smoothing


@pytest.mark.parametrize("value", [-1.0, float("nan"), "a lot"])
def test_tps_bad_regularization(value):
    with pytest.raises(wk.DegenerateInputError, match="regularization"):
        wk.ThinPlateSpline.fit(SPREAD, SPREAD, value)


def test_non_finite_correspondences_and_weights():
    bad = SPREAD.clone()
    bad[2, 0] = float("inf")
    with pytest.raises(wk.DegenerateInputError, match="finite"):
        wk.Projective.estimate(bad, SPREAD)
    with pytest.raises(wk.DegenerateInputError, match="weights"):
        wk.Affine.estimate(SPREAD, SPREAD, torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0]))


def test_non_transform_arguments():
    with pytest.raises(wk.WarpkitError, match="transform: expected a warpkit Transform, got Tensor"):
        wk.warp(IMAGE, torch.eye(3))
    with pytest.raises(wk.WarpkitError, match="other"):
        wk.Affine.identity().then(torch.eye(3))


def test_unknown_family():
    with pytest.raises(wk.UnknownFamilyError, match="affine") as info:
        wk.get_family("similarity-ish")
    assert isinstance(info.value, KeyError)
    assert "similarity-ish" in str(info.value)


def test_every_core_error_derives_from_the_root():
    for error in (
        wk.ShapeError,
        wk.DTypeError,
        wk.DeviceError,
        wk.ModeError,
        wk.SingularMatrixError,
        wk.DegenerateInputError,
        wk.SizeLimitError,
        wk.UnknownFamilyError,
        wk.PluginLoadError,
    ):
        assert issubclass(error, wk.WarpkitError)
