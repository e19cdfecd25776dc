"""Robustness, second round (issue 13): each test is one repro from the issue, checked against an independent
reference (OpenCV, scipy, float64 math) or against the documented error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import warpkit as wk

cv2 = pytest.importorskip("cv2")


def _pixel_centres(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


# --- item 2: invertibility judged by conditioning, not by a norm a translation dominates -------------


@pytest.mark.parametrize(
    "matrix",
    [
        np.array([[1.0, 0, 5000], [0, 1, 5000]]),
        np.array([[0.0, -1, 7999], [1, 0, 0]]),  # 90 degrees of an 8000-px frame
        cv2.getRotationMatrix2D((10000.0, 10000.0), 33.0, 1.0),  # about the centre of a 20000-px image
        cv2.getRotationMatrix2D((10000.0, 10000.0), 90.0, 1.0),
        np.array([[1e-3, 0, 0], [0, 1e-3, 0]]),  # a pure scale is perfectly conditioned
    ],
    ids=["translate-5000", "rot90-8000px", "rot33-20000px", "rot90-20000px", "scale-1e-3"],
)
def test_well_conditioned_matrices_with_large_entries_invert_as_opencv_does(matrix):
    grid = wk.Affine(torch.tensor(matrix)).grid((6, 7))[0].reshape(-1, 2).numpy()
    expected = cv2.transform(_pixel_centres(6, 7)[None], cv2.invertAffineTransform(matrix))[0]
    np.testing.assert_allclose(grid, expected, rtol=1e-12, atol=1e-9)


def test_warp_with_a_large_translation_is_not_refused():
    image = torch.rand(1, 1, 8, 8)
    out = wk.warp(image, wk.Affine([[1.0, 0, 5000], [0, 1, 5000]]))
    expected = cv2.warpAffine(image[0, 0].numpy(), np.array([[1.0, 0, 5000], [0, 1, 5000]]), (8, 8))
    np.testing.assert_array_equal(out[0, 0].numpy(), expected)


def test_large_homography_inverts():
    h = np.array([[0.9, 0.05, 12000.0], [-0.04, 1.1, -8000.0], [1e-6, 2e-6, 1.0]])
    grid = wk.Projective(torch.tensor(h)).grid((5, 6))[0].reshape(-1, 2).numpy()
    expected = cv2.perspectiveTransform(_pixel_centres(5, 6)[None], np.linalg.inv(h))[0]
    np.testing.assert_allclose(grid, expected, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize(
    "matrix",
    [[[1.0, 2, 3], [2, 4, 6]], [[0.0, 0, 5000], [0, 0, 5000]], [[1.0, 1e-14, 0], [1, 0, 0]]],
    ids=["dependent-rows", "zero-linear-part", "nearly-dependent"],
)
def test_singular_matrices_are_refused_whatever_their_translation(matrix):
    with pytest.raises(wk.SingularMatrixError, match="matrix: expected an invertible matrix"):
        wk.Affine(torch.tensor(matrix)).inverse()


def test_to_params_of_a_singular_matrix_is_a_warpkit_error():
    with pytest.raises(wk.SingularMatrixError, match="matrix: expected an invertible matrix"):
        wk.Affine(torch.zeros(2, 3)).to_params((8, 8))
    with pytest.raises(wk.SingularMatrixError, match="matrix: expected an invertible matrix"):
        wk.Projective(torch.ones(3, 3)).to_params((8, 8))


# --- item 10: half precision, weights ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matrices_work_in_float32_and_come_back(dtype):
    m = torch.tensor([[1.1, 0.2, 3.0], [-0.1, 0.9, 2.0]])
    affine = wk.Affine(m.to(dtype))
    inverse = affine.inverse()
    assert inverse.dtype == dtype
    reference = torch.linalg.inv(torch.cat([m.to(dtype).double(), torch.tensor([[0.0, 0, 1]], dtype=torch.float64)]))
    torch.testing.assert_close(inverse.matrix[0].double(), reference, atol=2e-2, rtol=1e-2)
    params = affine.to_params((8, 8))
    assert params.dtype == dtype
    back = wk.Affine.from_params(params, (8, 8))
    assert back.dtype == dtype
    torch.testing.assert_close(back.matrix.double(), affine.matrix.double(), atol=5e-2, rtol=2e-2)
    projective = wk.Projective.from_params(wk.Projective.identity_params(2, dtype=dtype), (8, 8))
    assert projective.dtype == dtype and projective.inverse().dtype == dtype
    out = wk.warp(torch.rand(1, 2, 8, 8, dtype=dtype), affine)
    assert out.dtype == dtype


def test_projective_estimate_with_all_zero_weights_is_refused():
    src = torch.rand(6, 2)
    with pytest.raises(wk.DegenerateInputError, match="weights: expected at least 4 positive weights"):
        wk.Projective.estimate(src, src + 1, torch.zeros(6))
    with pytest.raises(wk.DegenerateInputError, match="weights: expected at least 3 positive weights"):
        wk.Affine.estimate(src, src + 1, torch.tensor([1.0, 1, 0, 0, 0, 0]))


@pytest.mark.parametrize("batch_size", [-1, 1.5, None, True, "2"])
@pytest.mark.parametrize("name", sorted(wk.families()))
def test_identity_params_checks_its_batch_size_on_every_family(name, batch_size):
    family = wk.get_family(name)
    if family.num_params is None:
        pytest.skip("no parameter vector")
    with pytest.raises(wk.ShapeError, match="batch_size: expected an int >= 0"):
        family.identity_params(batch_size)
