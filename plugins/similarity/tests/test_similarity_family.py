"""torch-warpkit-similarity: the conformance kit on each family, plus OpenCV / torch / scikit-image references."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.transform import EuclideanTransform

import warpkit as wk
from warpkit.testing import FamilyTests
from warpkit_similarity import Attention, Rigid, Similarity


class TestSimilarityKit(FamilyTests):
    family = "similarity"  # by name: proves the entry point registered it


class TestRigidKit(FamilyTests):
    family = "rigid"


class TestAttentionKit(FamilyTests):
    family = "attention"


def test_registered_through_the_entry_point():
    assert (wk.get_family("similarity"), wk.get_family("rigid"), wk.get_family("attention")) == (
        Similarity,
        Rigid,
        Attention,
    )


@pytest.mark.parametrize("src_size, dst_size", [((24, 32), (24, 32)), ((24, 32), (10, 12))])
@pytest.mark.parametrize("align_corners", [False, True])
def test_attention_params_are_the_stn_papers_theta(src_size, dst_size, align_corners):
    s, tx, ty = 0.6, 0.2, -0.3
    grid = Attention.from_params(
        torch.tensor([[s, tx, ty]], dtype=torch.float64), src_size, dst_size, align_corners=align_corners
    ).grid(dst_size)
    theta = torch.tensor([[[s, 0, tx], [0, s, ty]]], dtype=torch.float64)
    normalised = F.affine_grid(theta, (1, 1, *dst_size), align_corners=align_corners)
    height, width = src_size
    if align_corners:
        expected = (normalised + 1) / 2 * torch.tensor([width - 1.0, height - 1.0], dtype=torch.float64)
    else:
        expected = ((normalised + 1) * torch.tensor([width, height], dtype=torch.float64) - 1) / 2
    torch.testing.assert_close(grid, expected, atol=1e-10, rtol=0)


def _correspondences(matrix, count=20):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 50, (count, 2))
    return src, src @ matrix[:, :2].T + matrix[:, 2]


def test_similarity_estimate_matches_cv2_estimate_affine_partial():
    angle, scale = 0.3, 1.4
    matrix = np.array(
        [[scale * np.cos(angle), -scale * np.sin(angle), 3.0], [scale * np.sin(angle), scale * np.cos(angle), -2.0]]
    )
    src, dst = _correspondences(matrix)
    expected, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    got = Similarity.estimate(torch.from_numpy(src), torch.from_numpy(dst)).matrix[0, :2].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_rigid_estimate_matches_skimage_with_noise():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 50, (30, 2))
    truth = EuclideanTransform(rotation=-0.4, translation=(5.0, 1.0))
    dst = truth(src) + rng.normal(0, 0.5, src.shape)
    expected = (
        EuclideanTransform.from_estimate(src, dst).params if hasattr(EuclideanTransform, "from_estimate") else None
    )
    if expected is None:
        reference = EuclideanTransform()
        reference.estimate(src, dst)
        expected = reference.params
    got = Rigid.estimate(torch.from_numpy(src), torch.from_numpy(dst)).matrix[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_rigid_params_rotate_about_the_centre_like_cv2():
    size = (24, 32)
    angle = 0.25
    t = Rigid.from_params(torch.tensor([[angle, 0.0, 0.0]], dtype=torch.float64), size)
    # dst -> src rotates by +angle about the centre, so src -> dst is cv2's matrix for -angle (degrees, y down)
    expected = cv2.getRotationMatrix2D(((size[1] - 1) / 2, (size[0] - 1) / 2), np.degrees(angle), 1.0)
    np.testing.assert_allclose(t.matrix[0, :2].numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("family", [Similarity, Rigid, Attention])
def test_params_round_trip(family):
    params = family.identity_params(3, dtype=torch.float64) + 0.1 * torch.randn(
        3, family.num_params, dtype=torch.float64
    )
    t = family.from_params(params, (24, 32), (12, 20), align_corners=True)
    torch.testing.assert_close(t.to_params((24, 32), (12, 20), align_corners=True), params)


def test_bad_params_name_the_argument():
    with pytest.raises(wk.ShapeError, match=r"params: expected shape \(B, 4\)"):
        Similarity.from_params(torch.zeros(2, 3), (8, 8))
