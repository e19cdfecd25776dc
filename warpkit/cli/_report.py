"""`warpkit report`: warp a real photograph with every family; compare with OpenCV and Kornia."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("families", nargs="*", metavar="NAME", help="families to report (default: all registered)")
    parser.add_argument(
        "--image",
        default="chelsea",
        choices=["chelsea", "astronaut", "coffee", "camera"],
        help="scikit-image photograph to warp (default: chelsea, 300 x 451)",
    )
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="output size (default: 7/8 of the input)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example transforms' parameter noise")


def run(args: argparse.Namespace) -> int:
    try:
        from ..report import run_report

        rows, text, seconds = run_report(args.image, args.size, args.families or None, args.seed)
    except ImportError as exc:
        print(
            f"warpkit report: needs OpenCV, scikit-image and kornia ({exc}): pip install 'torch-warpkit[report]'",
            file=sys.stderr,
        )
        return 2
    unknown = sorted(set(args.families) - {r.family for r in rows})
    if unknown:
        from .._registry import families

        print(
            f"warpkit report: NAME: expected registered families ({', '.join(sorted(families()))}), "
            f"got {', '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    print(text)
    print(f"({seconds:.1f} s)")
    return 0 if all(r.passed for r in rows) else 1
