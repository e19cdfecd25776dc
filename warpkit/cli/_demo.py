"""``warpkit demo stn``: the spatial-transformer experiment (see :mod:`warpkit.demo.stn`)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="demo", metavar="DEMO", required=True)
    stn = sub.add_parser("stn", help="STN vs CNN on distorted handwritten digits (Jaderberg et al. 2015, Table 1)")
    stn.add_argument("--data", metavar="IDX", help="MNIST images IDX file (default: scikit-learn's digits)")
    stn.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per model and distortion (default 3)")
    stn.add_argument("--epochs", type=int, default=None, metavar="N", help="training epochs (default as run_stn_demo)")
    stn.add_argument("--out", default="stn_demo.png", metavar="PNG", help="figure path (default stn_demo.png)")
    stn.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 150 digits: a smoke test")
    stn.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..demo.stn import run_stn_demo

    if args.seeds < 1 or (args.epochs is not None and args.epochs < 1):
        print("warpkit demo stn: --seeds and --epochs: expected at least 1", file=sys.stderr)
        return 2
    extra = {} if args.epochs is None else {"epochs": args.epochs}
    result = run_stn_demo(args.data, seeds=args.seeds, out=args.out, quick=args.quick, progress=not args.no_progress, **extra)
    print(f"wall time: {result.seconds:.0f} s")
    return 0
