"""The fast numba backend against the pure-torch reference sampler (values and gradients), OpenCV, and fuzzing.

The reference (``warpkit._sampler.reference_sample``) is itself verified against cv2 and SciPy in
test_sampler.py; here every mode of the fast kernels must reproduce it to 1e-5 in value and gradient.
Tensors stay small: the point is semantics, not speed (benchmarks/bench.py measures speed).
"""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import warpkit as wk
from warpkit import _fast
from warpkit._modes import Interpolation, Padding
from warpkit._sampler import prepare_fill, reference_sample

from conftest import CV2_BORDER, CV2_INTERP, INTERPOLATIONS, PADDINGS, cv2_border_value, to_numpy

pytest.importorskip("numba")

FILL = (0.2, 0.5, 0.8)


def random_problem(seed, batch=2, channels=3, size=(9, 11), out=(7, 8), dtype=torch.float32, grid_batch=None):
    """An image and a grid whose points fall inside, on the border and well outside the image."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, *size, generator=gen, dtype=dtype)
    grid = torch.rand(grid_batch or batch, *out, 2, generator=gen, dtype=dtype)
    grid = grid * torch.tensor([size[1] + 6.0, size[0] + 6.0], dtype=dtype) - 3
    return image, grid


def value_and_grads(fn, image, coords, seed=0):
    """``fn(image, coords)`` and the gradients of a random projection of it (zeros where none flows)."""
    image = image.clone().requires_grad_()
    coords = coords.clone().requires_grad_()
    out = fn(image, coords)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    (out * weights).sum().backward()
    grads = [torch.zeros_like(t) if t.grad is None else t.grad for t in (image, coords)]
    return [out.detach()] + grads


def both_backends(image, coords, interpolation, padding, fill=FILL, use_matrix=False, size=None):
    mode, pad = Interpolation(interpolation), Padding(padding)
    fill_t = prepare_fill(fill, pad, image)

    def fast(i, c):
        return _fast.fast_sample(i, c, mode, pad, fill_t, use_matrix=use_matrix, size=size)

    def reference(i, c):
        grid = _fast._autograd._matrix_grid(c, size) if use_matrix else c
        return reference_sample(i, grid, mode, pad, fill_t)

    return value_and_grads(fast, image, coords), value_and_grads(reference, image, coords)


def assert_close(ours, reference, atol=1e-5, rtol=1e-5):
    for name, a, b in zip(("value", "d/d image", "d/d coords"), ours, reference):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_grid_kernel_matches_reference(interpolation, padding):
    image, grid = random_problem(seed=1)
    assert_close(*both_backends(image, grid, interpolation, padding))


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matrix_kernel_matches_reference(interpolation, padding):
    """Coordinates computed inside the kernel from a projective matrix; gradients reach the matrix."""
    image, _ = random_problem(seed=2, size=(12, 10))
    matrix = torch.tensor([[0.9, 0.15, -1.3], [-0.12, 1.05, 0.7], [0.004, -0.003, 1.0]]).repeat(2, 1, 1)
    matrix = matrix + 0.01 * torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(3))
    ours, reference = both_backends(image, matrix, interpolation, padding, use_matrix=True, size=(11, 13))
    assert_close(ours[:2], reference[:2])
    # d/d matrix sums over all pixels with coordinates up to ~13: compare relative to its size
    torch.testing.assert_close(ours[2], reference[2], atol=1e-5 * float(reference[2].abs().max()), rtol=1e-4)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_wide_rows_span_several_column_tiles(interpolation, layout):
    """Rows wider than the forward's column tile (256), with many border pixels collected per tile."""
    image, grid = random_problem(seed=4, size=(6, 40), out=(3, 700))
    image = image.contiguous(memory_format=layout)
    assert_close(*both_backends(image, grid, interpolation, "constant"))
    # a rotation, out to 700 columns: most points fall outside. float64, as float32 points near x = 600 are
    # rounded by 6e-5 (differently by the kernel and by the reference's grid)
    angle = torch.tensor(0.3, dtype=torch.float64)
    matrix = torch.tensor([[angle.cos(), -angle.sin(), 2.0], [angle.sin(), angle.cos(), -3.0], [0.0, 0.0, 1.0]],
                          dtype=torch.float64)
    ours, reference = both_backends(image.double(), matrix[None], interpolation, "reflect101", use_matrix=True,
                                    size=(5, 700))
    assert_close(ours[:2], reference[:2])


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_warp_uses_the_matrix_kernel_and_matches_cv2(image_np, image, interpolation):
    """An independent check of the fused path: wk.warp on the default backend against cv2.warpAffine."""
    matrix = np.array([[0.95, -0.2, 6.3], [0.25, 1.05, -4.1]])
    ours = wk.warp(image, wk.Affine(torch.tensor(matrix, dtype=torch.float32)), (40, 52),
                   interpolation=interpolation, padding="reflect101")
    expected = cv2.warpAffine(image_np, matrix, (52, 40), flags=CV2_INTERP[interpolation],
                              borderMode=CV2_BORDER["reflect101"], borderValue=cv2_border_value("reflect101"))
    diff = np.abs(to_numpy(ours) - expected)
    if interpolation == "nearest":
        assert (diff > 1e-6).mean() <= 1e-3
    else:
        assert diff.max() <= 1e-4


def test_default_backend_is_fast_and_env_var_forces_reference(monkeypatch):
    image, grid = random_problem(seed=4)
    mode, pad = Interpolation.BILINEAR, Padding.ZEROS
    fill = prepare_fill(0.0, pad, image)
    assert _fast.sample_backend(image, grid, mode, pad, fill) is not None
    monkeypatch.setenv("WARPKIT_BACKEND", "reference")
    assert _fast.sample_backend(image, grid, mode, pad, fill) is None
    assert _fast.warp_matrix(image, wk.Affine.identity(), (5, 5), "bilinear", "zeros", 0.0) is None


def test_fast_backend_declines_what_it_cannot_do():
    image, grid = random_problem(seed=5)
    pad = Padding.CONSTANT
    fill = prepare_fill(torch.tensor([0.1, 0.2, 0.3], requires_grad=True), pad, image)
    assert _fast.sample_backend(image, grid, Interpolation.BILINEAR, pad, fill) is None  # d/d fill: reference
    empty = torch.zeros(2, 3, 0, 4)
    assert _fast.sample_backend(empty, grid, Interpolation.BILINEAR, pad, prepare_fill(0.0, pad, empty)) is None


def test_tensor_fill_with_gradient_still_differentiates():
    image, grid = random_problem(seed=6)
    fill = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    wk.sample(image, grid, padding="constant", fill=fill).sum().backward()
    assert fill.grad is not None and fill.grad.abs().sum() > 0


@pytest.mark.parametrize("channels", [1, 6])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_channel_counts_take_both_loop_orders(interpolation, channels):
    """Few channels loop columns innermost, many (in cache) loop channels innermost: both must agree."""
    image, grid = random_problem(seed=13, channels=channels)
    assert_close(*both_backends(image, grid, interpolation, "constant", fill=0.25))


@pytest.mark.parametrize("padding", ["reflect", "constant"])  # constant: pixels that read only fill
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_channels_last_in_channels_last_out(interpolation, padding):
    image, grid = random_problem(seed=7, channels=4)
    image_cl = image.contiguous(memory_format=torch.channels_last)
    ours, reference = both_backends(image_cl, grid, interpolation, padding, fill=FILL + (0.1,))
    assert_close(ours, reference)
    mode, pad = Interpolation(interpolation), Padding(padding)
    out = _fast.fast_sample(image_cl, grid, mode, pad, prepare_fill(0.0, pad, image_cl))
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    image, grid = random_problem(seed=8)
    image = image.to(dtype)
    mode, pad = Interpolation.BICUBIC, Padding.CONSTANT
    fill = prepare_fill(FILL, pad, image)
    ours = _fast.fast_sample(image, grid, mode, pad, fill)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, reference_sample(image, grid, mode, pad, fill), atol=0, rtol=0)


@pytest.mark.parametrize("image_batch, grid_batch", [(1, 3), (3, 1)])
def test_batch_of_one_broadcasts_with_gradients(image_batch, grid_batch):
    image, grid = random_problem(seed=9, batch=image_batch, grid_batch=grid_batch)
    assert_close(*both_backends(image, grid, "bicubic", "wrap"))


@pytest.mark.parametrize("interpolation, padding", [("bilinear", "zeros"), ("bicubic", "constant"),
                                                    ("bicubic", "reflect101")])
def test_gradcheck_grid_and_matrix_paths(interpolation, padding):
    image, grid = random_problem(seed=10, batch=1, channels=2, size=(5, 6), out=(4, 3), dtype=torch.float64)
    image.requires_grad_()
    grid.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda i, g: wk.sample(i, g, interpolation=interpolation, padding=padding, fill=0.3), (image, grid)
    )
    matrix = torch.tensor([[0.9, 0.1, 0.4], [-0.1, 1.1, -0.3], [0.01, 0.02, 1.0]], dtype=torch.float64)
    matrix.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda i, m: wk.warp(i, wk.Projective(m), (4, 5), interpolation=interpolation, padding=padding, fill=0.3),
        (image, matrix),
    )


def test_backward_is_bitwise_deterministic():
    image, grid = random_problem(seed=11, batch=1, channels=2, size=(16, 16), out=(40, 40), grid_batch=4)
    runs = [value_and_grads(lambda i, g: wk.sample(i, g, interpolation="bicubic"), image, grid) for _ in range(3)]
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


# ---- fuzz: non-finite, huge and tiny coordinates and matrices never read out of bounds ---------------------

SPECIALS = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 2.0**24, -(2.0**24) - 3, 1e-30, -0.5, 0.5]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_fuzz_grid_with_special_values(seed, interpolation):
    gen = torch.Generator().manual_seed(100 + seed)
    image, grid = random_problem(seed=200 + seed, size=(5, 4), out=(6, 6))
    specials = torch.tensor(SPECIALS)[torch.randint(len(SPECIALS), grid.shape, generator=gen)]
    grid = torch.where(torch.rand(grid.shape, generator=gen) < 0.4, specials, grid)
    for padding in PADDINGS:
        ours, reference = both_backends(image, grid, interpolation, padding)
        assert torch.isfinite(ours[0]).all()
        assert_close(ours, reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(3))
def test_fuzz_matrices_with_huge_and_degenerate_entries(seed, dtype):
    """float64 must match the reference; float32 only has to stay finite, since one float32 rounding of a
    coordinate near 1e6 already moves a sample by 0.06 px (the reference rounds at other steps)."""
    gen = torch.Generator().manual_seed(300 + seed)
    image, _ = random_problem(seed=400 + seed, size=(6, 5), dtype=dtype)
    matrix = torch.randn(2, 3, 3, generator=gen, dtype=dtype) * 10.0 ** torch.randint(-3, 12, (2, 3, 3), generator=gen)
    matrix[0, 2] = 0.0  # every point at infinity: all fill
    for interpolation in INTERPOLATIONS:
        for padding in PADDINGS:
            (value, *_), (expected, *_) = both_backends(image, matrix, interpolation, padding, use_matrix=True,
                                                        size=(4, 7))
            assert torch.isfinite(value).all()
            if dtype == torch.float64:
                torch.testing.assert_close(value, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_tracing_takes_the_reference_path():
    image, grid = random_problem(seed=12)
    traced = torch.jit.trace(lambda i, g: wk.sample(i, g, interpolation="bilinear"), (image, grid))
    assert "gather" in str(traced.graph)  # the reference sampler's ops, not an opaque Python call
    torch.testing.assert_close(traced(image, grid), wk.sample(image, grid), atol=1e-6, rtol=0)


def test_import_does_not_load_numba():
    code = "import sys, warpkit; print('numba' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


# --- custom ops: torch.compile uses the kernels -------------------------------------------------------
def test_custom_ops_pass_opcheck():
    # schema, fake (meta) implementation, autograd registration and dispatch, as torch checks them
    from warpkit._fast import _autograd

    generator = torch.Generator().manual_seed(5)
    image = torch.rand(2, 3, 6, 7, dtype=torch.float64, generator=generator).requires_grad_()
    grid = (torch.rand(2, 5, 4, 2, dtype=torch.float64, generator=generator) * 8 - 1).requires_grad_()
    fill = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    for coords, use_matrix in ((grid, False), (torch.eye(3, dtype=torch.float64).repeat(2, 1, 1), True)):
        args = (image, coords, use_matrix, 5, 4, 1, 1, fill)
        torch.library.opcheck(_autograd._forward_op, args)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_runs_the_kernels_and_matches_eager(backend):
    generator = torch.Generator().manual_seed(6)
    image = torch.rand(2, 3, 16, 20, generator=generator).requires_grad_()
    grid = (torch.rand(2, 12, 14, 2, generator=generator) * torch.tensor([22.0, 18.0]) - 1).requires_grad_()

    def loss(image, grid):
        return wk.sample(image, grid, interpolation="bicubic", padding="reflect").square().sum()

    graphs = []

    def recording(gm, inputs):
        graphs.append(gm)
        return torch._dynamo.lookup_backend(backend)(gm, inputs)

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend=recording, fullgraph=True)
    eager_value, compiled_value = loss(image, grid), compiled(image, grid)
    eager_grads = torch.autograd.grad(eager_value, (image, grid))
    compiled_grads = torch.autograd.grad(compiled_value, (image, grid))
    assert any("warpkit.fast_sample" in str(node.target) for gm in graphs for node in gm.graph.nodes)
    torch.testing.assert_close(compiled_value, eager_value)
    for got, expected in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, expected)
