"""torch-warpkit-lens: the conformance kit, plus OpenCV (projectPoints, undistortPoints, initUndistortRectifyMap)
and Kornia (distort_points) as references."""

import cv2
import numpy as np
import pytest
import torch

import warpkit as wk
from warpkit.testing import FamilyTests
from warpkit_lens import LensDistortion

K = np.array([[40.0, 0, 31.5], [0, 38.0, 23.0], [0, 0, 1]])
SIZE = (48, 64)
COEFFICIENTS = {
    "barrel": np.array([-0.12, 0.02, 0.001, -0.002]),
    "pincushion": np.array([0.08, 0.01, -0.003, 0.002]),
}


class TestLensKit(FamilyTests):
    family = "lens"


@pytest.fixture(params=list(COEFFICIENTS))
def lens(request):
    return LensDistortion(torch.from_numpy(K), torch.from_numpy(COEFFICIENTS[request.param]))


def _points():
    return np.random.default_rng(0).uniform([0, 0], [SIZE[1] - 1, SIZE[0] - 1], (200, 2))


def test_transform_points_is_cv2_project_points(lens):
    pts = _points()
    rays = np.concatenate([(pts - K[:2, 2]) / K.diagonal()[:2], np.ones((len(pts), 1))], axis=1)
    expected, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, lens.coefficients[0].numpy())
    got = lens.transform_points(torch.from_numpy(pts)).numpy()
    np.testing.assert_allclose(got, expected[:, 0], atol=1e-9)


def test_inverse_is_cv2_undistort_points(lens):
    distorted = lens.transform_points(torch.from_numpy(_points())).numpy()
    # cv2 iterates a fixed point; ask for enough iterations that it converges too
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    expected = cv2.undistortPoints(distorted[:, None], K, lens.coefficients[0].numpy(), R=None, P=K, criteria=criteria)
    got = lens.inverse().transform_points(torch.from_numpy(distorted)).numpy()
    np.testing.assert_allclose(got, expected[:, 0], atol=1e-6)


def test_undistort_grid_is_cv2_init_undistort_rectify_map(lens):
    map_x, map_y = cv2.initUndistortRectifyMap(
        K, lens.coefficients[0].numpy(), None, K, (SIZE[1], SIZE[0]), cv2.CV_32FC1
    )
    grid = lens.inverse().grid(SIZE)[0].numpy()
    assert np.abs(grid[..., 0] - map_x).max() < 1e-4 and np.abs(grid[..., 1] - map_y).max() < 1e-4


def test_undistorting_an_image_matches_cv2_remap_on_its_map(lens):
    # cv2.undistort itself uses fixed-point maps (1/32 px), so compare with its float map instead
    image = np.random.default_rng(1).random((*SIZE, 3), dtype=np.float32)
    map_x, map_y = cv2.initUndistortRectifyMap(
        K, lens.coefficients[0].numpy(), None, K, (SIZE[1], SIZE[0]), cv2.CV_32FC1
    )
    expected = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    got = wk.warp(torch.from_numpy(image).permute(2, 0, 1), lens.inverse())
    assert np.abs(got.permute(1, 2, 0).float().numpy() - expected).max() < 1e-4


def test_distortion_matches_kornia(lens):
    kornia_calibration = pytest.importorskip("kornia.geometry.calibration")
    pts = torch.from_numpy(_points())
    expected = kornia_calibration.distort_points(pts, torch.from_numpy(K), lens.coefficients[0])
    torch.testing.assert_close(lens.transform_points(pts), expected, atol=1e-9, rtol=0)


def test_undistortion_gradients_follow_the_implicit_function():
    coefficients = torch.tensor([-0.1, 0.02, 0.001, 0.002], dtype=torch.float64, requires_grad=True)
    points = torch.tensor([[10.0, 5.0], [50.0, 40.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda c, p: LensDistortion(torch.from_numpy(K), c).inverse().transform_points(p), (coefficients, points)
    )


def test_bad_coefficients_name_the_argument():
    with pytest.raises(wk.ShapeError, match="coefficients: expected shape"):
        LensDistortion(torch.eye(3), torch.zeros(5))
