"""torch-warpkit-elastic: the conformance kit, plus SciPy's cubic B-spline evaluation as the reference field."""

import numpy as np
import pytest
import torch
from scipy import ndimage

import warpkit as wk
from warpkit.testing import FamilyTests
from warpkit_elastic import Elastic


class TestElasticKit(FamilyTests):
    family = "elastic"


@pytest.mark.parametrize("lattice", [(4, 4), (3, 6)])
def test_field_is_scipys_cubic_b_spline(lattice):
    size = (20, 30)
    t = Elastic.random(size, lattice, magnitude=2.0, seed=0, dtype=torch.float64)
    grid = t.grid(size)[0].numpy()
    ky, kx = lattice
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float64)
    coords = [ys * (ky - 1) / (size[0] - 1), xs * (kx - 1) / (size[1] - 1)]
    coefficients = t.coefficients[0].numpy()
    for axis, base in ((0, xs), (1, ys)):
        expected = base + ndimage.map_coordinates(
            coefficients[..., axis], coords, order=3, prefilter=False, mode="nearest"
        )
        np.testing.assert_allclose(grid[..., axis], expected, atol=1e-10)


def test_random_is_seeded():
    a = Elastic.random((16, 16), seed=3).coefficients
    b = Elastic.random((16, 16), seed=3).coefficients
    c = Elastic.random((16, 16), seed=4).coefficients
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_points_invert_the_grid():
    t = Elastic.random((16, 24), magnitude=1.5, seed=1, dtype=torch.float64)
    grid = t.grid((16, 24))
    back = t.transform_points(grid.reshape(1, -1, 2)).reshape(grid.shape)
    centres = torch.stack(torch.meshgrid(torch.arange(24.0), torch.arange(16.0), indexing="xy"), -1).double()
    assert (back[0] - centres).abs().max() < 1e-9


def test_identity_params_warp_is_the_image():
    image = torch.rand(1, 2, 8, 9, dtype=torch.float64)
    t = Elastic.from_params(Elastic.identity_params(1, dtype=torch.float64), (8, 9))
    torch.testing.assert_close(wk.warp(image, t), image)


def test_bad_coefficients_name_the_argument():
    with pytest.raises(wk.ShapeError, match="coefficients: expected shape"):
        Elastic(torch.zeros(1, 4, 2), (8, 8))
