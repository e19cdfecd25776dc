"""TPS warp cost, warpkit against kornia, side by side (issue 9 item 4).

``wk.warp(image, wk.ThinPlateSpline.fit(src, dst))`` against kornia's ``get_tps_transform`` +
``warp_image_tps`` on the same image and control points: a 512x512 RGB float32 image, 25 points. The two
splines are not the same map (kornia's kernel is centred on the other point set; CROSS-LIBRARY.md): this
compares cost only. Each measurement runs in a fresh subprocess (peak RSS growth over the warp, from
``ru_maxrss``), interleaved, single-threaded; the median and spread of ``--rounds`` rounds are printed.

    python benchmarks/tps_vs_kornia.py [--size 512] [--points 25] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PROBE = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
which, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
src = rng.uniform(0, size - 1, (count, 2))
dst = src + rng.uniform(-size / 50, size / 50, (count, 2))
image = torch.rand(1, 3, size, size)
if which == "warpkit":
    import warpkit as wk
    s, d = torch.tensor(src, dtype=torch.float32), torch.tensor(dst, dtype=torch.float32)
    run = lambda image=image: wk.warp(image, wk.ThinPlateSpline.fit(s, d))
else:
    from kornia.geometry.transform import get_tps_transform, warp_image_tps
    to_norm = lambda p: torch.tensor(p / (size - 1) * 2 - 1, dtype=torch.float32)[None]
    s, d = to_norm(src), to_norm(dst)
    def run(image=image):
        centres, weights = get_tps_transform(d, s)  # kornia warps by the destination -> source spline
        return warp_image_tps(image, s, centres, weights, align_corners=True)
run(torch.rand(1, 3, 16, 16))  # warm-up on a small image (imports, kernel compilation), no large buffers yet
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
out = run()
seconds = time.perf_counter() - start
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
times = []
for _ in range(3):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
print(json.dumps({"seconds": min([seconds] + times), "peak_mib": peak, "shape": list(out.shape)}))
"""


def measure(which: str, size: int, points: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, which, str(size), str(points)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode:
        raise SystemExit(f"{which} failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--points", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"warpkit": [], "kornia": []}
    for _ in range(args.rounds):
        for which in results:  # interleaved, so that machine noise hits both alike
            results[which].append(measure(which, args.size, args.points))
    print(f"TPS warp {args.size}x{args.size}x3 float32, {args.points} control points, 1 thread, {args.rounds} rounds")
    summary = {}
    for which, runs in results.items():
        times = [r["seconds"] * 1e3 for r in runs]
        peaks = [r["peak_mib"] for r in runs]
        summary[which] = (statistics.median(times), statistics.median(peaks))
        print(
            f"  {which:8s} time {statistics.median(times):7.1f} ms (min {min(times):.1f}, max {max(times):.1f})   "
            f"peak RSS growth {statistics.median(peaks):6.1f} MiB (min {min(peaks):.1f}, max {max(peaks):.1f})"
        )
    (t_w, m_w), (t_k, m_k) = summary["warpkit"], summary["kornia"]
    print(f"  warpkit / kornia: time {t_w / t_k:.2f}x, peak memory {m_w / max(m_k, 1e-9):.2f}x (target: within 2x)")


if __name__ == "__main__":
    main()
