"""The torch-native backend against torch's own ``affine_grid`` + ``grid_sample`` doing the same work.

``warpkit bench --device cpu|cuda`` or ``python benchmarks/backends.py [--device cpu|cuda] [--rounds 3]
[--threads 1]``. Each case is timed side by side in one run: the functions take turns, ``--rounds``
times, and the table gives the median ratio and its spread over the rounds (ratio above 1: warpkit faster).
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, peak resident memory on the CPU.

On CUDA it first runs the backend-equivalence tests (``tests/test_backends.py``) on the GPU. Without CUDA,
``--device cuda`` says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import warpkit as wk


def _theta(batch, angle=0.2, scale=0.9, dtype=torch.float32, device="cpu"):
    a = torch.linspace(-angle, angle, batch, dtype=torch.float64)
    rows = [
        torch.stack([scale * a.cos(), -scale * a.sin(), torch.full_like(a, 0.05)], -1),
        torch.stack([scale * a.sin(), scale * a.cos(), torch.full_like(a, -0.03)], -1),
    ]
    return torch.stack(rows, 1).to(dtype=dtype, device=device)


# torch's closest equivalent of each warpkit padding (the same amount of work; wrap and constant have none)
_TORCH_PADDING = {
    "zeros": ("zeros", False),
    "constant": ("zeros", False),
    "replicate": ("border", False),
    "reflect": ("reflection", False),
    "reflect101": ("reflection", True),
    "wrap": ("zeros", False),
}


def _affine_case(shape, mode, padding, device):
    """(torch function, warpkit function, kornia function or None), each taking ``requires_grad``."""
    batch, channels, height, width = shape
    torch_pad, align = _TORCH_PADDING[padding]
    theta = _theta(batch, device=device)
    params = theta.reshape(batch, 6)
    image = torch.rand(shape, device=device)
    warp = wk.nn.Warp("affine", align_corners=align, interpolation=mode, padding=padding)

    def run_torch(grad):
        x, t = image.requires_grad_(grad), theta.requires_grad_(grad)
        grid = F.affine_grid(t, list(shape), align_corners=align)
        return F.grid_sample(x, grid, mode=mode, padding_mode=torch_pad, align_corners=align), (x, t)

    def run_warpkit(grad):
        x, p = image.requires_grad_(grad), params.requires_grad_(grad)
        with wk.backend("torch"):
            return warp(x, p), (x, p)

    return run_torch, run_warpkit


def _grid_case(shape, mode, padding, device):
    """Sampling alone on a fixed (thin-plate-spline-like) grid."""
    batch, channels, height, width = shape
    torch_pad, align = _TORCH_PADDING[padding]
    base = F.affine_grid(_theta(batch, 0.1, 1.0, device=device), list(shape), align_corners=align)
    bump = 0.05 * torch.sin(3 * base.flip(-1))
    norm = base + bump
    pixels = _to_pixels(norm, height, width, align)
    image = torch.rand(shape, device=device)

    def run_torch(grad):
        x, g = image.requires_grad_(grad), norm.requires_grad_(grad)
        return F.grid_sample(x, g, mode=mode, padding_mode=torch_pad, align_corners=align), (x, g)

    def run_warpkit(grad):
        x, g = image.requires_grad_(grad), pixels.requires_grad_(grad)
        with wk.backend("torch"):
            return wk.sample(x, g, interpolation=mode, padding=padding), (x, g)

    return run_torch, run_warpkit


def _to_pixels(norm, height, width, align):
    scale = torch.tensor(
        [width - 1 if align else width, height - 1 if align else height], dtype=norm.dtype, device=norm.device
    )
    return (norm + 1) * scale / 2 - (0 if align else 0.5)


def _timed(fn, grad, device, repeat):
    def step():
        out, inputs = fn(grad)
        if grad:
            out.backward(torch.ones_like(out))
            for t in inputs:
                t.grad = None
        return out

    step()  # warm-up
    samples = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), step


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mib(step, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    from warpkit.cli._bench import _peak_rss_mib

    return _peak_rss_mib(step)


CASES = [
    ("STN 256x1x28x28, affine", _affine_case, (256, 1, 28, 28), "bilinear", "zeros"),
    ("64x64x56x56, affine", _affine_case, (64, 64, 56, 56), "bilinear", "zeros"),
    ("16x32x128x128, affine", _affine_case, (16, 32, 128, 128), "bilinear", "zeros"),
    ("TPS-like grid 8x3x256x256", _grid_case, (8, 3, 256, 256), "bilinear", "zeros"),
    ("8x3x256x256 bicubic", _affine_case, (8, 3, 256, 256), "bicubic", "zeros"),
    ("16x32x128x128 constant", _affine_case, (16, 32, 128, 128), "bilinear", "constant"),
    ("16x32x128x128 wrap", _affine_case, (16, 32, 128, 128), "bilinear", "wrap"),
    ("16x32x128x128 reflect101", _affine_case, (16, 32, 128, 128), "bilinear", "reflect101"),
    ("grid 8x3x256x256 reflect101", _grid_case, (8, 3, 256, 256), "bilinear", "reflect101"),
    ("tiny 1x1x8x8 (fixed cost)", None, (1, 1, 8, 8), "bilinear", "zeros"),
]


def _fixed_cost(device):
    """``wk.warp`` of a 1x1x8x8 image by an Affine (auto backend) against affine_grid + grid_sample."""
    image = torch.rand(1, 1, 8, 8, device=device)
    affine = wk.Affine(torch.tensor([[0.9, 0.1, 0.5], [-0.1, 0.9, 0.3]], device=device))
    theta = _theta(1, device=device)

    def ours(grad):
        return wk.warp(image, affine), ()

    def theirs(grad):
        return F.grid_sample(image, F.affine_grid(theta, [1, 1, 8, 8], align_corners=False), align_corners=False), ()

    return theirs, ours


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="calls per timing (median)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available here: nothing measured (the GPU figures in README say so).")
        return 0
    torch.set_num_threads(args.threads)
    if device.type == "cuda" and not args.skip_tests:
        env = dict(os.environ, WARPKIT_TEST_DEVICE="cuda")
        tests = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "test_backends.py")
        if os.path.exists(tests):  # a checkout; an installed package has no tests
            code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests], env=env)
            print(f"backend-equivalence tests on CUDA: {'passed' if code == 0 else 'FAILED'}")
    print(
        f"device {device}, torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds; "
        "ratio = torch time / warpkit time (above 1: warpkit faster), median [min-max]"
    )
    print("| case | torch fwd ms | warpkit fwd ms | fwd ratio | fwd+bwd ratio | peak MiB torch / warpkit (fwd+bwd) |")
    print("|---|---|---|---|---|---|")
    for label, build, shape, mode, pad in CASES:
        theirs, ours = _fixed_cost(device) if build is None else build(shape, mode, pad, device)
        fwd, both, times = [], [], []
        for _ in range(args.rounds):
            t_fwd, _ = _timed(theirs, False, device, args.repeat)
            o_fwd, _ = _timed(ours, False, device, args.repeat)
            fwd.append(t_fwd / o_fwd)
            times.append((t_fwd, o_fwd))
            if "fixed" not in label:
                t_both, t_step = _timed(theirs, True, device, args.repeat)
                o_both, o_step = _timed(ours, True, device, args.repeat)
                both.append(t_both / o_both)
        if "fixed" in label:
            memory, both_text = "", "—"
        else:
            memory = f"{_peak_mib(t_step, device):.1f} / {_peak_mib(o_step, device):.1f}"
            both_text = _spread(both)
        t_med = statistics.median(t for t, _ in times) * 1e3
        o_med = statistics.median(o for _, o in times) * 1e3
        print(f"| {label} | {t_med:.3f} | {o_med:.3f} | {_spread(fwd)} | {both_text} | {memory} |", flush=True)
    return 0


def _spread(values):
    return f"{statistics.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]" if values else "—"


if __name__ == "__main__":
    sys.exit(main())
