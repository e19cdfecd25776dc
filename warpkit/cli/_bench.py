"""`warpkit bench`: warpkit's sampler against torch, kornia and OpenCV (also ``python benchmarks/bench.py``).

Measures, in one run, float32 forward and forward+backward medians (with their spread) for the affine cases of the
speed targets and a thin-plate-spline grid, warpkit on NCHW and on channels-last input, a plain copy of the output
as the floor, peak memory, the largest difference between the default and the reference backend, and the first-call
latency in a fresh process (import, first forward, first backward) of the compiled and the reference backend.
Prints markdown tables of times and ratios and writes a PNG plot.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
import time

__all__ = ["add_arguments", "run", "main"]

# (label, kind, N, C, H, W): the speed targets' cases, then a generic grid through the gather kernel
CASES = [
    ("64x3x64x64", "affine", 64, 3, 64, 64),
    ("8x64x56x56", "affine", 8, 64, 56, 56),
    ("1x3x1024x1024", "affine", 1, 3, 1024, 1024),
    ("16x32x128x128", "affine", 16, 32, 128, 128),
    ("tps 8x3x256x256", "tps", 8, 3, 256, 256),
]
QUICK_CASES = [
    ("8x3x64x64", "affine", 8, 3, 64, 64),
    ("2x16x56x56", "affine", 2, 16, 56, 56),
    ("tps 2x3x64x64", "tps", 2, 3, 64, 64),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small cases and short timings (a smoke run)")
    parser.add_argument(
        "--device",
        default=None,
        help="cpu or cuda: time the torch backend against torch's "
        "affine_grid + grid_sample on that device instead (CUDA: after the backend tests)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch (and so warpkit's kernels) and OpenCV threads (default 2)"
    )
    parser.add_argument("--out", metavar="PNG", default=None, help="also write a plot of the ratios to this PNG file")
    parser.add_argument("--plot", dest="out", help=argparse.SUPPRESS)  # the old name of --out
    parser.add_argument("--budget", type=float, default=None, help="seconds of timing per measurement")
    parser.add_argument("--no-latency", action="store_true", help="skip the first-call latency subprocesses")
    parser.add_argument(
        "--interpolation",
        choices=["nearest", "bilinear", "bicubic"],
        default="bilinear",
        help="the mode every library samples with (default bilinear)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.device is not None:
        from ._bench_backends import main as bench_backends

        return bench_backends(["--device", args.device, "--rounds", "2" if args.quick else "3"])
    import cv2
    import torch

    from .. import _native

    if not _native.available():
        print(
            f"warpkit bench: the compiled CPU kernels are not available ({_native.load_error()}); "
            "warpkit's numbers are its fallback backend's",
            file=sys.stderr,
        )
    torch.set_num_threads(args.threads)  # the compiled kernels follow torch's thread count
    cv2.setNumThreads(args.threads)
    budget = args.budget if args.budget is not None else (0.2 if args.quick else 0.6)
    started = time.perf_counter()
    print(_machine(args.threads))
    rows = []
    for label, kind, n, c, h, w in QUICK_CASES if args.quick else CASES:
        rows.append(_bench_case(label, kind, (n, c, h, w), budget, args.interpolation))
        print(f"  measured {label}", file=sys.stderr, flush=True)
    print()
    print(_tables(rows, args.interpolation))
    if not args.no_latency:
        print()
        print(_latency(rounds=1 if args.quick else 3))
    if args.out:
        _plot(rows, args.out, args.interpolation)
        print(f"\nplot: {args.out}")
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.0f} s")
    return 0


# ---- one case ---------------------------------------------------------------------------------------------


def _bench_case(label, kind, shape, budget, mode):
    import cv2
    import kornia
    import numpy as np
    import torch
    import torch.nn.functional as F

    import warpkit as wk

    n, c, h, w = shape
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(n, c, h, w, generator=gen)
    image_cl = image.contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(n, c, h, w, generator=gen)
    copy_target = torch.empty_like(image)
    times, spread, peak = {}, {}, {}
    cv2_flag = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}[mode]
    # cv2's cubic takes at most 4 channels a call: more go in groups of 4, as a cv2 user would do it
    group = 4 if mode == "bicubic" else c
    parts = [
        [np.ascontiguousarray(im.permute(1, 2, 0)[..., k : k + group].numpy()) for k in range(0, c, group)]
        for im in image
    ]  # per image, its HWC channel groups

    if kind == "affine":
        matrix = _random_affines(n, (h, w), gen)
        theta = wk.Affine(matrix).to_params((h, w), (h, w), align_corners=False).reshape(n, 2, 3)
        matrix_np = matrix.double().numpy()

        def torch_fwd(img=image, th=theta):
            grid = F.affine_grid(th, (n, c, h, w), align_corners=False)
            return F.grid_sample(img, grid, mode=mode, align_corners=False)

        def kornia_fwd(img=image, m=matrix):
            return kornia.geometry.transform.warp_affine(img, m, (h, w), mode=mode, align_corners=True)

        def cv2_fwd():
            return [cv2.warpAffine(p, m, (w, h), flags=cv2_flag) for ps, m in zip(parts, matrix_np) for p in ps]

        def ours_fwd(img=image, m=matrix):
            return wk.warp(img, wk.Affine(m), interpolation=mode)

        def ours_cl_fwd(img=image_cl, m=matrix):
            return wk.warp(img, wk.Affine(m), interpolation=mode)

        params = {"torch": theta, "kornia": matrix, "warpkit": matrix}
    else:
        grid = _tps_grid(n, (h, w), gen)
        normalised = torch.stack([(2 * grid[..., 0] + 1) / w - 1, (2 * grid[..., 1] + 1) / h - 1], -1)
        maps = [(g[..., 0].numpy().copy(), g[..., 1].numpy().copy()) for g in grid]

        def torch_fwd(img=image, g=normalised):
            return F.grid_sample(img, g, mode=mode, align_corners=False)

        def kornia_fwd(img=image, g=grid):
            return kornia.geometry.transform.remap(img, g[..., 0], g[..., 1], mode=mode, align_corners=True)

        def cv2_fwd():
            return [cv2.remap(p, mx, my, cv2_flag) for ps, (mx, my) in zip(parts, maps) for p in ps]

        def ours_fwd(img=image, g=grid):
            return wk.sample(img, g, interpolation=mode)

        def ours_cl_fwd(img=image_cl, g=grid):
            return wk.sample(img, g, interpolation=mode)

        params = {"torch": normalised, "kornia": grid, "warpkit": grid}

    forwards = {
        "copy": lambda: copy_target.copy_(image),
        "torch": torch_fwd,
        "kornia": kornia_fwd,
        "cv2": cv2_fwd,
        "warpkit": ours_fwd,
        "warpkit cl": ours_cl_fwd,
    }
    steps = {
        name + " fwd+bwd": _backward_step(fn, img, params[key], grad_out)
        for name, fn, img, key in (
            ("torch", torch_fwd, image, "torch"),
            ("kornia", kornia_fwd, image, "kornia"),
            ("warpkit", ours_fwd, image, "warpkit"),
            ("warpkit cl", ours_cl_fwd, image_cl, "warpkit"),
        )
    }
    # interleaved rounds: every library sees the same machine load (a busy machine slows all of them alike)
    samples = _interleaved({**{k: _no_grad(f) for k, f in forwards.items()}, **steps}, budget)
    for name, values in samples.items():
        times[name] = 1e3 * statistics.median(values)
        spread[name] = _spread(values)
    for name in ("torch", "kornia", "warpkit", "warpkit cl"):
        peak[name] = _peak_rss_mib(steps[name + " fwd+bwd"])
    with torch.no_grad():
        peak["warpkit fwd"] = _peak_rss_mib(ours_fwd)
        peak["warpkit cl fwd"] = _peak_rss_mib(ours_cl_fwd)
        peak["torch fwd"] = _peak_rss_mib(torch_fwd)
    diff = _default_vs_reference(ours_fwd, image, params["warpkit"], grad_out)
    return {"label": label, "times": times, "spread": spread, "peak": peak, "diff": diff}


def _random_affines(n, size, gen):
    """``(n, 2, 3)`` rotations by up to 30 degrees, scales 0.8..1.2 and shifts, about the image centre."""
    import torch

    h, w = size
    angle = (torch.rand(n, generator=gen) - 0.5) * math.radians(60)
    scale = 0.8 + 0.4 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 0.1 * torch.tensor([w, h])
    cos, sin = scale * angle.cos(), scale * angle.sin()
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2])
    linear = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)  # (n, 2, 2)
    offset = centre - linear @ centre + shift
    return torch.cat([linear, offset.unsqueeze(-1)], -1)


def _tps_grid(n, size, gen):
    """``(n, H, W, 2)`` pixel grid of a thin-plate spline through a jittered 4x4 lattice."""
    import torch

    import warpkit as wk

    h, w = size
    ys, xs = torch.meshgrid(torch.linspace(0, h - 1, 4), torch.linspace(0, w - 1, 4), indexing="ij")
    src = torch.stack([xs.flatten(), ys.flatten()], -1).expand(n, -1, -1)
    dst = src + torch.randn(n, 16, 2, generator=gen) * 0.04 * min(h, w)
    return wk.ThinPlateSpline.fit(src, dst).grid((h, w)).contiguous()


def _backward_step(forward, image, param, grad_out):
    img = image.clone().requires_grad_()
    prm = param.clone().requires_grad_()

    def step():
        img.grad = prm.grad = None
        forward(img, prm).backward(grad_out)

    return step


def _default_vs_reference(forward, image, param, grad_out):
    """Largest errors of the default (compiled) and of the reference float32 backends against float64 reference math:
    ``[default out, reference out, default d image, reference d image]``; gradients relative to their largest value."""
    results = {}
    for backend, dtype in (("auto", image.dtype), ("reference", image.dtype), ("reference", "float64")):
        with _backend(backend):
            results[(backend, dtype)] = _forward_backward(forward, image, param, grad_out, dtype)
    exact_out, exact_grad = results[("reference", "float64")]
    scale = float(exact_grad.abs().max())
    errors = []
    for key in (("auto", image.dtype), ("reference", image.dtype)):
        errors.append(float((results[key][0] - exact_out).abs().max()))
    for key in (("auto", image.dtype), ("reference", image.dtype)):
        errors.append(float((results[key][1] - exact_grad).abs().max()) / scale)
    return errors


def _forward_backward(forward, image, param, grad_out, dtype):
    img = image.double() if dtype == "float64" else image.clone()
    prm = param.double() if dtype == "float64" else param.clone()
    img.requires_grad_()
    prm.requires_grad_()
    out = forward(img, prm)
    out.backward(grad_out.to(out.dtype))
    return out.detach().double(), img.grad.double()


@contextlib.contextmanager
def _backend(name: str):
    """Pin ``WARPKIT_BACKEND`` for a block and put back whatever the caller had (set or not)."""
    saved = os.environ.get("WARPKIT_BACKEND")
    os.environ["WARPKIT_BACKEND"] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WARPKIT_BACKEND", None)
        else:
            os.environ["WARPKIT_BACKEND"] = saved


def _no_grad(fn):
    import torch

    def run():
        with torch.no_grad():
            return fn()

    return run


def _interleaved(fns, budget):
    """Seconds per call of each function, measured in rounds that call each once (after a warm-up call), until
    ``budget`` seconds per function have passed (3 to 30 rounds)."""
    for fn in fns.values():
        fn()
    samples = {name: [] for name in fns}
    spent = 0.0
    while len(samples[next(iter(fns))]) < 3 or (spent < budget * len(fns) and len(samples[next(iter(fns))]) < 30):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            samples[name].append(took)
            spent += took
    return samples


def _spread(values):
    """Interquartile range relative to the median: how much the timings of one measurement scatter."""
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return (q[2] - q[0]) / max(statistics.median(values), 1e-12)


def _median_ms(fn, budget):
    fn()  # warm-up: compile, allocator
    samples = []
    deadline = time.perf_counter() + budget
    while len(samples) < 3 or (time.perf_counter() < deadline and len(samples) < 50):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples)


def _release_freed_memory_to_the_os():
    """glibc keeps freed blocks resident, which hides peaks; serve large blocks by mmap (returned on free)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: fixed, so it no longer grows after frees
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _peak_rss_mib(fn):
    """Peak resident memory above the level before ``fn`` (Linux: VmHWM after clearing it), in MiB."""
    try:
        gc.collect()
        _release_freed_memory_to_the_os()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the high-water mark
        before = _status_kib("VmRSS")
        fn()
        return max(0.0, (_status_kib("VmHWM") - before) / 1024)
    except OSError:
        return float("nan")
    finally:
        _reuse_freed_memory()


def _reuse_freed_memory():
    """Undo :func:`_release_freed_memory_to_the_os` for timings: blocks below 32 MiB (glibc's largest
    threshold) come from the heap again, so each call does not pay page faults for fresh memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 32 * 1024 * 1024)
    except (OSError, AttributeError):
        pass


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(key)


# ---- first-call latency ---------------------------------------------------------------------------------

_FIRST_CALL = """
import time
t0 = time.perf_counter()
import torch, warpkit as wk
t1 = time.perf_counter()
x = torch.rand(2, 3, 32, 32, requires_grad=True)
m = torch.tensor([[[0.9, 0.1, 1.0], [-0.1, 0.9, 2.0]]], requires_grad=True)
out = wk.warp(x, wk.Affine(m))
t2 = time.perf_counter()
out.sum().backward()
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, wk.last_backend() if hasattr(wk, "last_backend") else "?")
"""


def _latency(rounds: int) -> str:
    """First call in fresh processes, per backend: median over ``rounds`` processes (run alternately)."""
    lines = [
        "First call (fresh process, float32 bilinear warp 2x3x32x32, forward and backward): median of "
        f"{rounds} process(es), import / first forward / first backward"
    ]
    runs: dict[str, list[tuple[float, float, float]]] = {"native": [], "reference": []}
    ran = {}
    # as a user runs it: with Python's bytecode cache (one warm-up process writes it)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, timeout=600)
    for _ in range(rounds):
        for name in runs:
            env["WARPKIT_BACKEND"] = name
            result = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, timeout=600
            )
            if result.returncode != 0:
                ran[name] = f"failed: {result.stderr.strip().splitlines()[-1:]}"
                continue
            *numbers, ran[name] = result.stdout.split()
            t_import, t_fwd, t_bwd = (float(v) for v in numbers)
            runs[name].append((t_import, t_fwd, t_bwd))
    for name, values in runs.items():
        if not values:
            lines.append(f"- {name}: {ran.get(name)}")
            continue
        t_import, t_fwd, t_bwd = (1e3 * statistics.median(v[k] for v in values) for k in range(3))
        lines.append(f"- {name} (ran: {ran[name]}): {t_import:.0f} ms / {t_fwd:.1f} ms / {t_bwd:.1f} ms")
    if runs["native"] and runs["reference"]:
        extra = [1e3 * statistics.median((v[1] + v[2]) for v in runs[name]) for name in ("native", "reference")]
        lines.append(f"- first forward + backward, native minus reference: {extra[0] - extra[1]:+.1f} ms")
    return "\n".join(lines)


# ---- report -----------------------------------------------------------------------------------------------


def _machine(threads: int) -> str:
    import cv2
    import kornia
    import torch

    from .. import _native

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"Machine: {cpu}, {os.cpu_count()} logical CPUs, {threads} threads; Python {platform.python_version()}, "
        f"torch {torch.__version__}, OpenCV {cv2.__version__}, kornia {kornia.__version__}; compiled kernels: "
        f"{_native.build_info() or _native.load_error()}"
    )


def _tables(rows, mode) -> str:
    def ms(r, key):
        return f"{r['times'][key]:.2f} ±{100 * r['spread'][key]:.0f}%"

    out = [
        f"Forward, float32, {mode}, zeros padding: median ms ±interquartile range (ratio = other / warpkit; > 1 means "
        "warpkit is faster). warpkit on NCHW and on channels-last (CL) input; cv2 always gets HWC arrays (its layout)",
        "",
        "| case | copy | torch | kornia | cv2 | warpkit | warpkit CL | vs torch | CL vs torch | vs kornia | vs cv2 "
        "| CL vs cv2 | warpkit / copy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["times"]
        ours, cl = t["warpkit"], t["warpkit cl"]
        out.append(
            f"| {r['label']} | {ms(r, 'copy')} | {ms(r, 'torch')} | {ms(r, 'kornia')} | {ms(r, 'cv2')} | "
            f"{ms(r, 'warpkit')} | {ms(r, 'warpkit cl')} | {t['torch'] / ours:.2f}x | {t['torch'] / cl:.2f}x | "
            f"{t['kornia'] / ours:.2f}x | {t['cv2'] / ours:.2f}x | {t['cv2'] / cl:.2f}x | {ours / t['copy']:.1f} |"
        )
    out += [
        "",
        "Forward + backward (gradients for the image and the matrix / grid): median ms ±interquartile range, "
        "peak RSS MiB",
        "",
        "| case | torch | kornia | warpkit | warpkit CL | vs torch | CL vs torch | vs kornia "
        "| peak MiB torch fwd / fwd+bwd | warpkit fwd / fwd+bwd | warpkit CL fwd / fwd+bwd |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, p = r["times"], r["peak"]
        ours, cl = t["warpkit fwd+bwd"], t["warpkit cl fwd+bwd"]
        out.append(
            f"| {r['label']} | {ms(r, 'torch fwd+bwd')} | {ms(r, 'kornia fwd+bwd')} | {ms(r, 'warpkit fwd+bwd')} | "
            f"{ms(r, 'warpkit cl fwd+bwd')} | {t['torch fwd+bwd'] / ours:.2f}x | {t['torch fwd+bwd'] / cl:.2f}x | "
            f"{t['kornia fwd+bwd'] / ours:.2f}x | {p['torch fwd']:.1f} / {p['torch']:.1f} | "
            f"{p['warpkit fwd']:.1f} / {p['warpkit']:.1f} | {p['warpkit cl fwd']:.1f} / {p['warpkit cl']:.1f} |"
        )
    out += [
        "",
        "Accuracy against float64 math (max |error|; d image relative to its largest value): the default backend",
        "(the compiled kernels) against the float32 reference backend",
        "",
        "| case | out, default | out, reference | d image, default | d image, reference |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["diff"]
        out.append(f"| {r['label']} | {d[0]:.1e} | {d[1]:.1e} | {d[2]:.1e} | {d[3]:.1e} |")
    return "\n".join(out)


def _plot(rows, path, mode):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in rows]
    series = {
        "forward vs torch": [r["times"]["torch"] / r["times"]["warpkit"] for r in rows],
        "forward vs cv2": [r["times"]["cv2"] / r["times"]["warpkit"] for r in rows],
        "CL forward vs cv2": [r["times"]["cv2"] / r["times"]["warpkit cl"] for r in rows],
        "fwd+bwd vs torch": [r["times"]["torch fwd+bwd"] / r["times"]["warpkit fwd+bwd"] for r in rows],
    }
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        ax.bar([i + k * width for i in range(len(rows))], values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(rows))], labels, fontsize=8)
    ax.set_ylabel("speed-up of warpkit (x)")
    ax.set_title(f"warpkit compiled CPU kernels, float32 {mode}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
