"""The sampler door and its backends: every backend equals the reference sampler in every mode.

The reference itself is held to cv2, SciPy and a float64 brute force in test_sampler.py and test_properties.py;
here each other backend must reproduce it to 1e-5 (float32) in values and in gradients for the image, the grid,
the matrix and a tensor fill. ``WARPKIT_TEST_DEVICE=cuda`` runs the same tests on a GPU.
"""

from __future__ import annotations

import os
import types

import pytest
import torch

import warpkit as wk
from warpkit import _dispatch
from warpkit._modes import Interpolation, Padding

DEVICE = torch.device(os.environ.get("WARPKIT_TEST_DEVICE", "cpu"))
OTHERS = [b for b in _dispatch.installed_backends() if b != "reference"]
if DEVICE.type != "cpu":
    OTHERS = [b for b in OTHERS if b != "native"]
MODES = list(Interpolation)
PADS = list(Padding)
FILL = (0.25, -1.5, 3.0)


def _generic_grid(batch, out_h, out_w, height, width, dtype, seed=0):
    """Points from 2 pixels outside to 2 inside the far edge, kept off integers and .5 ties."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(batch, out_h, out_w, 2, generator=g, dtype=torch.float64)
    grid = grid * torch.tensor([width + 4.0, height + 4.0], dtype=torch.float64) - 2
    frac = grid - grid.floor()
    grid = torch.where((frac - 0.5).abs() < 0.02, grid + 0.05, grid)
    grid = torch.where((frac < 0.02) | (frac > 0.98), grid + 0.1, grid)
    return grid.to(dtype)


def _run(backend, fn):
    with wk.backend(backend):
        out = fn()
    assert wk.last_backend() == backend
    return out


def _image(batch=2, channels=3, height=7, width=9, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=g, dtype=dtype).to(DEVICE)


def _values_and_grads(backend, image, coords, mode, pad, fill, *, matrix_family=None, size=None):
    image = image.detach().clone().requires_grad_()
    coords = coords.detach().clone().requires_grad_()
    fill_t = None
    if pad is Padding.CONSTANT:
        # the compiled kernels give no gradient for fill (the dispatch sends such calls elsewhere)
        fill_t = torch.tensor(FILL, dtype=image.dtype, device=image.device).requires_grad_(backend != "native")
    used_fill = fill_t if fill_t is not None else fill

    def call():
        if matrix_family is not None:
            return wk.warp(image, matrix_family(coords), size, interpolation=mode, padding=pad, fill=used_fill)
        return wk.sample(image, coords, interpolation=mode, padding=pad, fill=used_fill)

    out = _run(backend, call)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
    wanted = [image, coords] + ([fill_t] if fill_t is not None and fill_t.requires_grad else [])
    grads = torch.autograd.grad((out * weights).sum(), wanted, allow_unused=True)
    return out.detach(), [g if g is not None else torch.zeros_like(w) for g, w in zip(grads, wanted)]


@pytest.mark.parametrize("backend", OTHERS)
@pytest.mark.parametrize("pad", PADS, ids=[p.value for p in PADS])
@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_grid_values_and_gradients_equal_the_reference(backend, mode, pad):
    image = _image()
    grid = _generic_grid(2, 5, 6, 7, 9, torch.float32).to(DEVICE)
    expected, expected_grads = _values_and_grads("reference", image, grid, mode, pad, FILL)
    out, grads = _values_and_grads(backend, image, grid, mode, pad, FILL)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    for got, want in zip(grads, expected_grads[: len(grads)]):
        _assert_grad_close(got, want)


def _assert_grad_close(got, want, tolerance=1e-5):
    """Within ``tolerance`` of the gradient's own scale: matrix gradients sum over every pixel and reach 1e2."""
    scale = max(1.0, want.abs().max().item())
    torch.testing.assert_close(got, want, atol=tolerance * scale, rtol=0)


def _affine(theta):
    return wk.Affine(theta)


def _projective(theta):
    return wk.Projective(theta)


@pytest.mark.parametrize("backend", OTHERS)
@pytest.mark.parametrize("pad", PADS, ids=[p.value for p in PADS])
@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
@pytest.mark.parametrize("family", [_affine, _projective], ids=["affine", "projective"])
def test_matrix_values_and_gradients_equal_the_reference(backend, family, mode, pad):
    image = _image(height=8, width=10)
    angle = torch.tensor([0.3, -1.1], dtype=torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    rows = [
        torch.stack([1.3 * c, -1.3 * s, torch.tensor([1.37, -2.21])], -1),
        torch.stack([1.1 * s, 1.1 * c, torch.tensor([0.61, 3.13])], -1),
    ]
    if family is _projective:
        rows.append(torch.tensor([[0.011, -0.02, 1.0], [-0.015, 0.008, 1.0]], dtype=torch.float64))
    matrix = torch.stack(rows, 1).float().to(DEVICE)
    expected, expected_grads = _values_and_grads(
        "reference", image, matrix, mode, pad, FILL, matrix_family=family, size=(6, 11)
    )
    out, grads = _values_and_grads(backend, image, matrix, mode, pad, FILL, matrix_family=family, size=(6, 11))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # torch's grid_sample takes points in its normalised frame: in float32 the matrix gradient of the torch
    # backend is 1.3e-5 of its scale from float64 truth (the reference's: 5e-6), so allow 5e-5 there.
    for got, want, tolerance in zip(grads, expected_grads[: len(grads)], (1e-5, 5e-5, 1e-5)):
        _assert_grad_close(got, want, tolerance)


@pytest.mark.parametrize("pad", PADS, ids=[p.value for p in PADS])
@pytest.mark.parametrize("mode", [Interpolation.BILINEAR, Interpolation.BICUBIC], ids=["bilinear", "bicubic"])
def test_torch_backend_gradcheck_and_double_backward(mode, pad):
    image = _image(1, 2, 4, 5, torch.float64).requires_grad_()
    grid = _generic_grid(1, 3, 2, 4, 5, torch.float64, seed=3).to(DEVICE).requires_grad_()
    fill = torch.tensor([0.5, -2.0], dtype=torch.float64, device=DEVICE, requires_grad=pad is Padding.CONSTANT)

    def fn(i, g, f):
        with wk.backend("torch"):
            return wk.sample(i, g, interpolation=mode, padding=pad, fill=f)

    assert torch.autograd.gradcheck(fn, (image, grid, fill))
    assert torch.autograd.gradgradcheck(fn, (image, grid, fill))


@pytest.mark.parametrize("backend", ["reference", *OTHERS])
@pytest.mark.parametrize("fill", [float("nan"), float("inf"), 1e30, -3e38])
@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_fill_never_touches_pixels_whose_taps_are_inside(backend, mode, fill):
    image = _image(1, 3, 12, 12)
    grid = _generic_grid(1, 9, 9, 12, 12, torch.float32, seed=5).to(DEVICE)
    out = _run(backend, lambda: wk.sample(image, grid, interpolation=mode, padding="constant", fill=fill))
    plain = _run("reference", lambda: wk.sample(image, grid, interpolation=mode, padding="zeros"))
    reach = {Interpolation.NEAREST: (0.5, 0.5), Interpolation.BILINEAR: (0, 1), Interpolation.BICUBIC: (1, 2)}[mode]
    low = grid.floor() - reach[0] if mode is not Interpolation.NEAREST else torch.round(grid)
    high = grid.floor() + reach[1] if mode is not Interpolation.NEAREST else torch.round(grid)
    inside = ((low >= 0) & (high <= 11)).all(-1)[:, None].expand_as(out)
    assert inside.any() and (~inside).any()
    torch.testing.assert_close(out[inside], plain[inside], atol=1e-6, rtol=0)
    outside = out[~inside]
    assert (
        not torch.isfinite(outside).all() if fill != fill or abs(fill) == float("inf") else outside.abs().max() > 1e20
    )


@pytest.mark.parametrize("backend", OTHERS)
def test_broadcasting_layouts_dtypes_and_per_sample_fill(backend):
    image = _image(1, 3, 6, 7)
    grid = _generic_grid(4, 5, 5, 6, 7, torch.float32, seed=2).to(DEVICE)
    fill = torch.arange(12, dtype=torch.float32, device=DEVICE).reshape(4, 3, 1, 1)  # kornia's (B, C, 1, 1)
    for args in [
        (image, grid),
        (image.expand(4, -1, -1, -1).contiguous(memory_format=torch.channels_last), grid),
        (image.expand(4, -1, -1, -1).contiguous(), grid[:1]),
    ]:
        ours = _run(backend, lambda: wk.sample(*args, padding="constant", fill=fill))
        ref = _run("reference", lambda: wk.sample(*args, padding="constant", fill=fill))
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
        assert ours.is_contiguous(memory_format=torch.channels_last) == ref.is_contiguous(
            memory_format=torch.channels_last
        )
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        ours = _run(backend, lambda: wk.sample(image.to(dtype), grid.to(dtype), interpolation="bicubic"))
        ref = _run("reference", lambda: wk.sample(image.to(dtype), grid.to(dtype), interpolation="bicubic"))
        assert ours.dtype == dtype
        torch.testing.assert_close(
            ours.float(),
            ref.float(),
            atol=1e-5 if dtype != torch.bfloat16 else 1e-2,
            rtol=1e-3 if dtype == torch.float16 else 0,
        )


@pytest.mark.parametrize("backend", OTHERS)
@pytest.mark.parametrize("pad", PADS, ids=[p.value for p in PADS])
def test_one_pixel_sides(backend, pad):
    for shape in [(1, 1), (1, 5), (4, 1)]:
        image = _image(1, 2, *shape, seed=4)
        grid = _generic_grid(1, 3, 4, *shape, torch.float32, seed=6).to(DEVICE)
        for mode in MODES:
            ours = _run(backend, lambda: wk.sample(image, grid, interpolation=mode, padding=pad, fill=0.5))
            ref = _run("reference", lambda: wk.sample(image, grid, interpolation=mode, padding=pad, fill=0.5))
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", OTHERS)
def test_backward_is_bitwise_repeatable(backend):
    if DEVICE.type == "cuda" and backend == "torch":
        pytest.skip("grid_sample's CUDA backward accumulates with atomics: the dispatch avoids it when asked")
    image = _image(2, 4, 20, 20).requires_grad_()
    grid = _generic_grid(2, 30, 30, 20, 20, torch.float32).to(DEVICE).requires_grad_()

    def grads():
        out = _run(backend, lambda: wk.sample(image, grid, interpolation="bilinear", padding="reflect"))
        return torch.autograd.grad(out.square().sum(), (image, grid))

    first, second = grads(), grads()
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_pinning_env_var_context_manager_and_errors(monkeypatch):
    image, grid = _image(1, 1, 5, 5), _generic_grid(1, 2, 2, 5, 5, torch.float32).to(DEVICE)
    monkeypatch.setenv("WARPKIT_BACKEND", "reference")
    wk.sample(image, grid)
    assert wk.last_backend() == "reference"
    with wk.backend("torch"):  # the context manager wins over the variable
        wk.sample(image, grid)
        assert wk.last_backend() == "torch"
    monkeypatch.setenv("WARPKIT_BACKEND", "fastest")
    with pytest.raises(wk.BackendError, match="WARPKIT_BACKEND: expected one of 'auto', .*got 'fastest'"):
        wk.sample(image, grid)
    with pytest.raises(wk.BackendError, match="name: expected one of"):
        with wk.backend("numba"):
            pass
    monkeypatch.delenv("WARPKIT_BACKEND")
    wk.warp(image, wk.Affine.identity())
    assert wk.last_backend() == _dispatch.installed_backends()[0]
    assert set(wk.backends()) == {"native", "torch", "reference"}


def _fake_call(device_type, requires_grad):
    tensor = types.SimpleNamespace(
        device=torch.device("cpu") if device_type == "cpu" else types.SimpleNamespace(type=device_type),
        requires_grad=requires_grad,
        dtype=torch.float32,
    )
    return _dispatch.Call(tensor, tensor, False, False, (2, 2), Interpolation.BILINEAR, Padding.ZEROS, None)


def test_deterministic_mode_on_cuda_avoids_grid_sample_backward():
    torch_backend = _dispatch._BACKENDS["torch"]
    previous = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        assert torch_backend.declines(_fake_call("cuda", True)) is not None
        assert torch_backend.declines(_fake_call("cuda", False)) is None  # forward only: no atomics
        assert torch_backend.declines(_fake_call("cpu", True)) is None  # the CPU backward is deterministic
        torch.use_deterministic_algorithms(False)
        assert torch_backend.declines(_fake_call("cuda", True)) is None
    finally:
        torch.use_deterministic_algorithms(previous)
