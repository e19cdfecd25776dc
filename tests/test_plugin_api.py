"""The plugin-author API: public names only, Transform.to/.detach/len/indexing, grid converters vs torch."""

from __future__ import annotations

import ast
import pathlib
import warnings

import pytest
import torch
import torch.nn.functional as F

import warpkit as wk
import warpkit.plugin as plugin_api
from warpkit.testing import example

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted(p for p in (ROOT / "plugins").glob("*/warpkit_*/*.py"))


def _families():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sorted(wk.families())


# --- public names -----------------------------------------------------------------------------------------
def test_first_party_plugins_import_only_public_warpkit_names():
    assert PLUGIN_SOURCES, "no plugin sources found: the test proves nothing"
    private = []
    for path in PLUGIN_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
                names = [a.name for a in node.names]
                if node.module.startswith("warpkit"):
                    private += [f"{path.name}: {node.module}.{n}" for n in names if n.startswith("_")]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                parts = module.split(".")
                if parts[0] == "warpkit" and any(p.startswith("_") for p in parts[1:]):
                    private.append(f"{path.name}: {module}")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "wk":
                if node.attr.startswith("_"):
                    private.append(f"{path.name}: wk.{node.attr}")
    assert private == []


def test_plugin_module_exports_what_it_lists_and_docs_name_every_export():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None
        assert f"`{name}`" in docs or f"`{name}(" in docs, f"docs/plugins.md does not document warpkit.plugin.{name}"
    assert plugin_api.Transform is wk.Transform and plugin_api.ShapeError is wk.ShapeError


def test_public_argument_checks_raise_warpkit_errors_naming_the_argument():
    with pytest.raises(wk.ShapeError, match=r"^src_size: expected \(H, W\)"):
        plugin_api.check_sizes((3,), None)
    with pytest.raises(wk.DTypeError, match=r"^camera: expected a real floating dtype"):
        plugin_api.as_float_tensor(torch.ones(2, dtype=torch.complex64), "camera")
    with pytest.raises(wk.DegenerateInputError, match=r"^src: expected at least 3 points, got 2"):
        plugin_api.correspondences(torch.zeros(2, 2), torch.zeros(2, 2), None, minimum=3)
    with pytest.raises(wk.SingularMatrixError, match=r"^matrix: expected an invertible matrix"):
        plugin_api.checked_inverse(torch.zeros(1, 3, 3))


# --- .to(), .detach(), len(), indexing: every family, plugins included ------------------------------------
@pytest.fixture(params=_families())
def family(request):
    return wk.get_family(request.param)


def _example(family, batch, dtype=torch.float64):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return example(family, batch, dtype)


def _points(batch):
    generator = torch.Generator().manual_seed(3)
    return torch.rand(batch, 7, 2, generator=generator, dtype=torch.float64) * torch.tensor([30.0, 22.0])


def test_len_iteration_and_indexing_give_the_members(family):
    t = _example(family, 3)
    points = _points(3)
    batched = t.transform_points(points)
    assert len(t) == 3 and len(list(t)) == 3
    for i, member in enumerate(t):
        assert type(member) is type(t) and len(member) == 1
        torch.testing.assert_close(member.transform_points(points[i : i + 1]), batched[i : i + 1], atol=1e-9, rtol=0)
    torch.testing.assert_close(t[-1].transform_points(points[2:]), batched[2:], atol=1e-9, rtol=0)
    picked = t[[2, 0]]
    torch.testing.assert_close(picked.transform_points(points[[2, 0]]), batched[[2, 0]], atol=1e-9, rtol=0)
    masked = t[torch.tensor([False, True, True])]
    torch.testing.assert_close(masked.grid((5, 6)), t.grid((5, 6))[1:], atol=1e-9, rtol=0)
    assert len(t[1:]) == 2 and len(t[3:]) == 0


def test_bad_indices_are_refused_by_name(family):
    t = _example(family, 2)
    with pytest.raises(IndexError, match=r"index: expected -2 <= index < 2, got 5"):
        t[5]
    with pytest.raises(wk.ShapeError, match=r"index: expected a boolean mask of shape \(2,\)"):
        t[torch.tensor([True, False, True])]
    with pytest.raises(wk.ShapeError, match="index: expected an int, slice"):
        t["0"]


def test_to_changes_dtype_and_keeps_the_map(family):
    t = _example(family, 2, torch.float64)
    single = t.to(torch.float32)
    assert single.dtype == torch.float32 and t.dtype == torch.float64 and type(single) is type(t)
    points = _points(2)
    torch.testing.assert_close(
        single.transform_points(points.float()).double(), t.transform_points(points), atol=2e-3, rtol=0
    )
    assert single.grid((4, 5)).dtype == torch.float32
    back = single.to(dtype=torch.float64)
    assert back.dtype == torch.float64 and back.to("cpu").device == torch.device("cpu")
    with pytest.raises(wk.DTypeError, match="dtype: expected a floating torch.dtype"):
        t.to(torch.int64)


def test_detach_cuts_the_graph_and_keeps_the_values(family):
    if not family.num_params:
        pytest.skip("no parameter vector to differentiate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = wk.testing.example_params(family, 1).requires_grad_()
        t = family.from_params(params, (24, 32))
    points = _points(1)
    assert t.transform_points(points).requires_grad
    detached = t.detach()
    out = detached.transform_points(points)
    assert not out.requires_grad
    torch.testing.assert_close(out, t.transform_points(points).detach(), atol=1e-9, rtol=0)


def test_composed_transforms_index_each_part():
    a = wk.Affine(torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(0)) * 0.1 + torch.eye(2, 3))
    shift = wk.Affine(torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]))
    composed = wk.ThinPlateSpline.identity(1).then(a).then(shift)
    assert type(composed) is wk.Composed and len(composed) == 3
    points = _points(3).float()
    torch.testing.assert_close(composed[1].transform_points(points[1:2]), composed.transform_points(points)[1:2])
    assert composed.to(torch.float64).dtype == torch.float64
    single = composed.to(torch.float32)
    spline = single.parts[0]
    assert spline.dtype == torch.float32 and spline.centres.dtype == torch.float64  # the spline keeps float64
    assert bool(wk.Affine.identity(0)) and len(wk.Affine.identity(0)) == 0


def test_to_moves_every_tensor_the_transform_holds(family):
    """On the meta device (no data, any machine): a tensor left behind would break on a GPU."""
    moved = _example(family, 2, torch.float32).to("meta")
    assert moved.device.type == "meta"
    tensors = [v for v in vars(moved).values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.device.type == "meta" for t in tensors)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_moves_every_family_to_the_gpu_and_back(family):
    t = _example(family, 2, torch.float32)
    on_gpu = t.to("cuda")
    assert on_gpu.device.type == "cuda" and on_gpu.grid((4, 5)).device.type == "cuda"
    torch.testing.assert_close(on_gpu.to("cpu").grid((4, 5)), t.grid((4, 5)), atol=1e-4, rtol=0)


# --- one direction word -----------------------------------------------------------------------------------
def test_direction_is_one_enum_with_strings_at_the_boundary():
    assert wk.Direction.parse("Forward") is wk.Direction.FORWARD
    assert wk.Direction.INVERSE.flipped() is wk.Direction.FORWARD
    with pytest.raises(
        wk.ModeError, match=r"native: expected 'forward' \(source -> destination\) or 'inverse', got True"
    ):
        wk.Direction.parse(True)
    spline = wk.ThinPlateSpline.fit(
        torch.tensor([[0.0, 0.0], [9.0, 1.0], [2.0, 8.0], [7.0, 7.0]]),
        torch.tensor([[0.5, 0.0], [9.0, 1.5], [2.0, 8.0], [7.5, 7.0]]),
    )
    assert spline.native is wk.Direction.INVERSE and spline.inverse().native is wk.Direction.FORWARD


# --- grid converters: torch's grid_sample and affine_grid are the reference --------------------------------
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("padding, torch_padding", [("zeros", "zeros"), ("replicate", "border")])
def test_normalized_grid_reads_what_grid_sample_reads(align_corners, interpolation, padding, torch_padding):
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 7, 9, generator=generator, dtype=torch.float64)
    grid = torch.rand(2, 5, 6, 2, generator=generator, dtype=torch.float64) * 2.4 - 1.2
    expected = F.grid_sample(image, grid, mode=interpolation, padding_mode=torch_padding, align_corners=align_corners)
    pixels = wk.normalized_to_pixel(grid, (7, 9), align_corners=align_corners)
    got = wk.sample(image, pixels, interpolation=interpolation, padding=padding)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_and_the_pixel_grid_convert_into_each_other(align_corners):
    theta = torch.tensor([[[0.9, -0.2, 0.1], [0.25, 1.1, -0.05]]], dtype=torch.float64)
    src, dst = (24, 32), (20, 28)
    reference = F.affine_grid(theta, (1, 1, *dst), align_corners=align_corners)  # normalised, reads the source
    pixels = wk.Affine.from_params(theta.reshape(1, 6), src, dst, align_corners=align_corners).grid(dst)
    torch.testing.assert_close(
        wk.pixel_to_normalized(pixels, src, align_corners=align_corners), reference, atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        wk.normalized_to_pixel(reference, src, align_corners=align_corners), pixels, atol=1e-10, rtol=0
    )


def test_the_wrong_align_corners_is_visibly_off():
    grid = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    off = wk.normalized_to_pixel(grid, (10, 10), align_corners=False) - wk.normalized_to_pixel(
        grid, (10, 10), align_corners=True
    )
    assert off.abs().max() == pytest.approx(0.5)
    # pixel centres of the corners: -0.5..W-0.5 without align_corners, 0..W-1 with it
    assert wk.normalized_to_pixel(grid, (10, 20), align_corners=True)[2].tolist() == [19.0, 9.0]
    assert wk.normalized_to_pixel(grid, (10, 20), align_corners=False)[0].tolist() == [-0.5, -0.5]


def test_grid_converters_refuse_bad_input_by_name():
    with pytest.raises(wk.ShapeError, match=r"grid: expected shape \(\.\.\., 2\)"):
        wk.normalized_to_pixel(torch.zeros(3, 3), (4, 4))
    with pytest.raises(wk.DTypeError, match="grid: expected a floating dtype"):
        wk.pixel_to_normalized(torch.zeros(3, 2, dtype=torch.long), (4, 4))
    with pytest.raises(wk.ShapeError, match=r"size: expected H and W >= 2 with align_corners=True"):
        wk.pixel_to_normalized(torch.zeros(3, 2), (1, 4), align_corners=True)
    # a 1-pixel side with align_corners=True reads that pixel wherever g points, as grid_sample does
    assert wk.normalized_to_pixel(torch.tensor([[0.7, -0.3]]), (1, 1), align_corners=True).tolist() == [[0.0, 0.0]]


def test_grid_converters_are_differentiable():
    grid = torch.rand(1, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: wk.normalized_to_pixel(g, (5, 7), align_corners=False), (grid,))
