"""The compiled CPU core (warpkit._native) against the pure-torch reference sampler: values and gradients to 1e-5
in every mode, layout and dtype, coordinate fuzzing, huge pixels, fork/spawn DataLoader workers, threads,
torch.compile. The reference is itself checked against cv2, SciPy and kornia in test_sampler.py.
Tensors stay small: the point is semantics, not speed (`warpkit bench` measures speed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import torch
from conftest import INTERPOLATIONS, PADDINGS

from warpkit import _native
from warpkit._coords import apply_matrix, pixel_grid
from warpkit._modes import Interpolation, Padding
from warpkit._native import _abi, _ops
from warpkit._reference import reference_sample

pytestmark = pytest.mark.skipif(not _native.available(), reason=f"compiled core not built: {_native.load_error()}")

FILL = (0.2, 0.5, 0.8)
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def make_fill(values, pad, channels, dtype, batch=1):
    """``(Bf, C, 1, 1)``: the fill with constant padding, zeros otherwise."""
    if pad is not Padding.CONSTANT:
        return torch.zeros(1, channels, 1, 1, dtype=dtype)
    values = torch.as_tensor(values, dtype=dtype).reshape(-1)
    fill = values.repeat(channels)[:channels].reshape(1, channels, 1, 1)
    return (fill + 0.1 * torch.arange(batch, dtype=dtype).reshape(-1, 1, 1, 1)).contiguous()


def random_problem(seed, batch=2, channels=3, size=(9, 11), out=(7, 8), dtype=torch.float32, grid_batch=None):
    """An image and a grid whose points fall inside, on the border and well outside the image."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, *size, generator=gen, dtype=dtype)
    grid = torch.rand(grid_batch or batch, *out, 2, generator=gen, dtype=dtype)
    grid = grid * torch.tensor([size[1] + 6.0, size[0] + 6.0], dtype=dtype) - 3
    return image, grid


def matrix_grid(matrix, size):
    centres = pixel_grid(size, matrix.dtype, matrix.device).reshape(1, -1, 2)
    return apply_matrix(matrix, centres).reshape(matrix.shape[0], *size, 2)


def value_and_grads(fn, image, coords, seed=0):
    """``fn(image, coords)`` and the gradients of a random projection of it (zeros where none flows)."""
    image = image.detach().clone().requires_grad_()
    coords = coords.detach().clone().requires_grad_()
    out = fn(image, coords)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    (out * weights).sum().backward()
    grads = [torch.zeros_like(t) if t.grad is None else t.grad for t in (image, coords)]
    return [out.detach()] + grads


def both(image, coords, interpolation, padding, fill=FILL, use_matrix=False, size=None, fill_batch=1):
    mode, pad = Interpolation(interpolation), Padding(padding)
    fill_t = make_fill(fill, pad, image.shape[1], image.dtype, fill_batch)

    def native(i, c):
        return _native.sample(i, c, mode, pad, fill_t, use_matrix=use_matrix, size=size)

    def reference(i, c):
        grid = matrix_grid(c, size) if use_matrix else c
        return reference_sample(i, grid, mode, pad, fill_t)

    return value_and_grads(native, image, coords), value_and_grads(reference, image, coords)


def assert_close(ours, reference, atol=1e-5, rtol=1e-5):
    for name, a, b in zip(("value", "d/d image", "d/d coords"), ours, reference):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_grid_matches_reference(interpolation, padding, layout, dtype):
    image, grid = random_problem(seed=1, dtype=dtype)
    image = image.contiguous(memory_format=LAYOUTS[layout])
    ours, reference = both(image, grid, interpolation, padding)
    assert_close(ours, reference)
    assert ours[0].is_contiguous(memory_format=LAYOUTS[layout])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matrix_matches_reference(interpolation, padding, layout):
    """Coordinates computed inside the kernel from projective matrices; gradients reach the matrix."""
    image, _ = random_problem(seed=2, size=(12, 10))
    image = image.contiguous(memory_format=LAYOUTS[layout])
    matrix = torch.tensor([[0.9, 0.15, -1.3], [-0.12, 1.05, 0.7], [0.004, -0.003, 1.0]]).repeat(2, 1, 1)
    matrix = matrix + 0.01 * torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(3))
    ours, reference = both(image, matrix, interpolation, padding, use_matrix=True, size=(11, 13))
    assert_close(ours[:2], reference[:2])
    # d/d matrix sums over all pixels with coordinates up to ~13: compare relative to its size
    torch.testing.assert_close(ours[2], reference[2], atol=1e-5 * float(reference[2].abs().max()), rtol=1e-4)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_affine_matrix_float64_and_batch_broadcast(interpolation):
    image, _ = random_problem(seed=3, batch=3, channels=2, size=(10, 12), dtype=torch.float64)
    matrix = torch.tensor([[[0.8, -0.3, 2.5], [0.35, 0.9, -1.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    assert_close(*both(image, matrix, interpolation, "reflect", use_matrix=True, size=(9, 14)))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_both_nchw_loop_orders(interpolation, order, monkeypatch):
    """Channel planes outer and pixels outer (chosen by shape in real calls) compute the same thing."""
    monkeypatch.setattr(_ops, "_ORDER", order)
    image, grid = random_problem(seed=13, channels=6)
    assert_close(*both(image, grid, interpolation, "constant", fill=0.25))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_wide_rows_many_channels_and_per_batch_fill(interpolation, layout):
    """Rows over several column tiles (256), 20 channels (vectorised channels-last loop), one fill per image."""
    image, grid = random_problem(seed=4, channels=20, size=(6, 40), out=(3, 600))
    image = image.contiguous(memory_format=LAYOUTS[layout])
    assert_close(*both(image, grid, interpolation, "constant", fill=0.3, fill_batch=2))


@pytest.mark.parametrize("image_batch, grid_batch", [(1, 3), (3, 1)])
def test_batch_of_one_broadcasts_with_gradients(image_batch, grid_batch):
    image, grid = random_problem(seed=9, batch=image_batch, grid_batch=grid_batch)
    assert_close(*both(image, grid, "bicubic", "wrap"))


def test_odd_strides_and_half_precision():
    image, grid = random_problem(seed=5, size=(9, 22))
    odd = image[:, :, :, ::2]  # column stride 2: read in place
    assert_close(*both(odd, grid, "bilinear", "reflect101"))
    mode, pad = Interpolation.BICUBIC, Padding.REPLICATE
    fill = make_fill(0.0, pad, 3, torch.float32)
    out = _native.sample(image.half(), grid.half(), mode, pad, fill)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, reference_sample(image.half(), grid.half(), mode, pad, fill.half()), atol=0, rtol=0)


@pytest.mark.parametrize(
    "interpolation, padding",
    [("bilinear", "zeros"), ("bicubic", "constant"), ("bicubic", "reflect101"), ("bilinear", "wrap")],
)
def test_gradcheck_grid_and_matrix(interpolation, padding):
    image, grid = random_problem(seed=10, batch=1, channels=2, size=(5, 6), out=(4, 3), dtype=torch.float64)
    mode, pad = Interpolation(interpolation), Padding(padding)
    fill = make_fill(0.3, pad, 2, torch.float64)
    image.requires_grad_()
    grid.requires_grad_()
    assert torch.autograd.gradcheck(lambda i, g: _native.sample(i, g, mode, pad, fill), (image, grid))
    matrix = torch.tensor([[[0.9, 0.1, 0.4], [-0.1, 1.1, -0.3], [0.01, 0.02, 1.0]]], dtype=torch.float64)
    matrix.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda i, m: _native.sample(i, m, mode, pad, fill, use_matrix=True, size=(4, 5)), (image, matrix)
    )


def test_double_backward_goes_through_the_reference():
    image, grid = random_problem(seed=14, batch=1, channels=1, size=(5, 5), out=(3, 3), dtype=torch.float64)
    image.requires_grad_()
    grid.requires_grad_()
    fill = make_fill(0.0, Padding.ZEROS, 1, torch.float64)
    assert torch.autograd.gradgradcheck(
        lambda i, g: _native.sample(i, g, Interpolation.BICUBIC, Padding.ZEROS, fill), (image, grid)
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_is_bitwise_repeatable_on_threads(layout):
    image, grid = random_problem(seed=11, batch=1, channels=16, size=(40, 40), out=(64, 64), grid_batch=4)
    image = image.contiguous(memory_format=LAYOUTS[layout])
    matrix = torch.tensor([[[0.9, 0.2, 1.0], [-0.2, 0.9, 2.0], [0.001, 0.0, 1.0]]]).repeat(4, 1, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for coords, use_matrix in ((grid, False), (matrix, True)):
            runs = [
                both(image, coords, "bicubic", "constant", use_matrix=use_matrix, size=(64, 64))[0] for _ in range(3)
            ]
            for other in runs[1:]:
                assert all(torch.equal(a, b) for a, b in zip(runs[0], other))
    finally:
        torch.set_num_threads(threads)


# ---- fuzz: non-finite, huge and tiny coordinates and matrices never read out of bounds ----------------------
SPECIALS = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 2.0**24, -(2.0**24) - 3, 1e-30, -0.5, 0.5, 4.5, 3.0]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_fuzz_grid_with_special_values(seed, interpolation):
    gen = torch.Generator().manual_seed(100 + seed)
    image, grid = random_problem(seed=200 + seed, size=(5, 4), out=(6, 6))
    specials = torch.tensor(SPECIALS)[torch.randint(len(SPECIALS), grid.shape, generator=gen)]
    grid = torch.where(torch.rand(grid.shape, generator=gen) < 0.4, specials, grid)
    for padding in PADDINGS:
        for layout in LAYOUTS.values():
            ours, reference = both(image.contiguous(memory_format=layout), grid, interpolation, padding)
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
            (value, *_), (expected, *_) = both(image, matrix, interpolation, padding, use_matrix=True, size=(4, 7))
            assert torch.isfinite(value).all()
            if dtype == torch.float64:
                torch.testing.assert_close(value, expected, atol=1e-5, rtol=1e-5)


# ---- numerics: pixels up to float32's range, fill kept out of the image --------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_pixels_near_float32_max_stay_finite(interpolation, layout):
    """+-3e38 pixels: at pixel centres the output is the pixel exactly; between them it stays finite (nearest,
    bilinear) or equals the float64 result where that is representable (bicubic)."""
    sign = torch.tensor([1.0, -1.0]).repeat(4)[:7]
    image = (3e38 * sign[None, :] * sign[:, None]).reshape(1, 1, 7, 7).repeat(1, 2, 1, 1)
    image = image.contiguous(memory_format=LAYOUTS[layout])
    mode, pad = Interpolation(interpolation), Padding.REPLICATE
    fill = make_fill(0.0, pad, 2, torch.float32)
    centres = matrix_grid(torch.eye(3)[None], (7, 7))
    torch.testing.assert_close(_native.sample(image, centres, mode, pad, fill), image, atol=0, rtol=0)
    between = centres + torch.tensor([0.37, 0.61])
    out = _native.sample(image, between, mode, pad, fill)
    exact = reference_sample(image.double(), between.double(), mode, pad, fill.double())
    representable = exact.abs() <= torch.finfo(torch.float32).max
    assert torch.isfinite(out[representable]).all()
    torch.testing.assert_close(out[representable].double(), exact[representable], rtol=1e-5, atol=0)


@pytest.mark.parametrize("value", [float("nan"), 1e30, float("inf")])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_fill_never_touches_points_inside(interpolation, value):
    image, grid = random_problem(seed=15)
    mode = Interpolation(interpolation)
    inside = ((grid >= 2) & (grid <= 5)).all(-1)  # every tap of every mode inside the 9 x 11 image
    zeros = _native.sample(image, grid, mode, Padding.ZEROS, make_fill(0.0, Padding.ZEROS, 3, torch.float32))
    filled = _native.sample(image, grid, mode, Padding.CONSTANT, make_fill(value, Padding.CONSTANT, 3, torch.float32))
    mask = inside[:, None].expand_as(zeros)
    assert torch.equal(filled[mask], zeros[mask]) and mask.any()


# ---- the core that ran, process and thread safety ------------------------------------------------------------
def test_the_built_core_is_what_runs(monkeypatch):
    from warpkit._native import _library

    assert _native.load_error() is None
    assert os.path.dirname(_abi.path()) == os.path.dirname(_library.__file__)
    assert "-O3" in _native.build_info() and _native.build_info() == _library.BUILD
    calls = []
    real = _abi.library()

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    monkeypatch.setitem(_abi._state, "library", Spy())
    image, grid = random_problem(seed=16)
    both(image, grid, "bilinear", "zeros")
    assert calls == ["wk_forward", "wk_backward"]


def test_import_and_first_call_load_neither_numba_nor_dynamo():
    code = (
        "import sys, torch, warpkit\n"
        "from warpkit import _native\n"
        "from warpkit._modes import Interpolation as I, Padding as P\n"
        "img = torch.rand(1, 3, 8, 8, requires_grad=True)\n"
        "grid = (torch.rand(1, 4, 4, 2) * 7).requires_grad_()\n"
        "_native.sample(img, grid, I.BILINEAR, P.ZEROS, torch.zeros(1, 3, 1, 1)).sum().backward()\n"
        "assert img.grad is not None and grid.grad is not None\n"
        "print(sorted(m for m in ('numba', 'torch._dynamo') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_library_is_reported_not_fatal():
    code = "import warpkit; from warpkit import _native; print(_native.available()); print(_native.load_error())"
    env = dict(os.environ, WARPKIT_NATIVE_LIBRARY="/nonexistent/libwarpkit_cpu.so")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    available, error = result.stdout.strip().splitlines()
    assert result.returncode == 0 and available == "False" and "/nonexistent/libwarpkit_cpu.so" in error


class WarpDataset(torch.utils.data.Dataset):
    """Warps in __getitem__, the common augmentation pattern (module level: spawn pickles it)."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        image, grid = random_problem(seed=index, batch=1, channels=3, size=(32, 32), out=(48, 48))
        pad = Padding.REFLECT
        out = _native.sample(image, grid, Interpolation.BILINEAR, pad, make_fill(0.0, pad, 3, torch.float32))
        return out[0], reference_sample(image, grid, Interpolation.BILINEAR, pad, torch.zeros(1, 3, 1, 1))[0]


def native_on_two_threads(seed, interpolation, padding):
    """Forward and backward of the core on 2 threads. torch's own ops stay on 1 thread (tensors this small do
    anyway): torch's GNU OpenMP pool, once started, would make a forked child abort or hang by itself."""
    image, grid = random_problem(seed=seed, batch=4, channels=8, size=(64, 64), out=(64, 64))
    mode, pad = Interpolation(interpolation), Padding(padding)
    fill = make_fill(FILL, pad, 8, torch.float32)
    ones = torch.ones(4, 8, 64, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = _native.sample(image, grid, mode, pad, fill)
        grads = _ops._backward(
            ones,
            image,
            grid,
            fill.reshape(1, -1),
            False,
            64,
            64,
            _ops._MODES[interpolation],
            _ops._PADS[padding],
            True,
            True,
        )
    finally:
        torch.set_num_threads(threads)
    return (image, grid, mode, pad, fill), (out, *grads)


def warp_in_parent_on_threads():
    """A multi-threaded call in the parent, so the pool's threads exist when a worker is forked."""
    native_on_two_threads(0, "bilinear", "zeros")
    assert _abi.library().wk_pool_size() >= 1


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_workers_warp_after_the_parent(start_method):
    warp_in_parent_on_threads()
    loader = torch.utils.data.DataLoader(
        WarpDataset(), batch_size=2, num_workers=2, multiprocessing_context=start_method, timeout=120
    )
    batches = list(loader)
    assert len(batches) == 2
    for ours, expected in batches:
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_runs_its_own_thread_pool():
    warp_in_parent_on_threads()
    pid = os.fork()
    if pid == 0:  # the child: a multi-threaded call starts a fresh pool; exit status 0 only if it matched
        code = 1
        try:
            assert _abi.library().wk_pool_size() == 0
            (image, grid, mode, pad, fill), (out, *_) = native_on_two_threads(1, "bicubic", "wrap")
            torch.testing.assert_close(out, reference_sample(image, grid, mode, pad, fill), atol=1e-5, rtol=1e-5)
            code = 0 if _abi.library().wk_pool_size() >= 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_concurrent_python_threads_share_the_core():
    image, grid = random_problem(seed=17, batch=2, channels=4, size=(48, 48), out=(64, 64))
    mode, pad = Interpolation.BILINEAR, Padding.REPLICATE
    fill = make_fill(0.0, pad, 4, torch.float32)
    expected = reference_sample(image, grid, mode, pad, fill)
    results, threads = [], torch.get_num_threads()
    torch.set_num_threads(2)

    def work():
        for _ in range(20):
            results.append(torch.equal(_native.sample(image, grid, mode, pad, fill), results_ref))

    try:
        results_ref = _native.sample(image, grid, mode, pad, fill)
        workers = [threading.Thread(target=work) for _ in range(4)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(results_ref, expected, atol=1e-5, rtol=1e-5)
    assert len(results) == 80 and all(results)


# ---- custom ops: torch.compile runs the kernels ------------------------------------------------------------
def test_custom_ops_pass_opcheck():
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(2, 3, 6, 7, dtype=torch.float64, generator=generator).requires_grad_()
    grid = (torch.rand(2, 5, 4, 2, dtype=torch.float64, generator=generator) * 8 - 1).requires_grad_()
    fill = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    for coords, use_matrix in ((grid, False), (torch.eye(3, dtype=torch.float64).repeat(2, 1, 1), True)):
        torch.library.opcheck(_ops._sample_op, (image, coords, fill, use_matrix, 5, 4, 1, 1))


def test_torch_compile_runs_the_kernels_and_matches_eager():
    generator = torch.Generator().manual_seed(6)
    image = torch.rand(2, 3, 16, 20, generator=generator).requires_grad_()
    grid = (torch.rand(2, 12, 14, 2, generator=generator) * torch.tensor([22.0, 18.0]) - 1).requires_grad_()
    fill = torch.zeros(1, 3, 1, 1)

    def loss(image, grid):
        return _native.sample(image, grid, Interpolation.BICUBIC, Padding.REFLECT, fill).square().sum()

    graphs = []

    def recording(gm, inputs):
        graphs.append(gm)
        return torch._dynamo.lookup_backend("aot_eager")(gm, inputs)

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend=recording, fullgraph=True)
    eager_value, compiled_value = loss(image, grid), compiled(image, grid)
    eager_grads = torch.autograd.grad(eager_value, (image, grid))
    compiled_grads = torch.autograd.grad(compiled_value, (image, grid))
    assert any("warpkit.native_sample" in str(node.target) for gm in graphs for node in gm.graph.nodes)
    torch.testing.assert_close(compiled_value, eager_value)
    for got, expected in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, expected)
