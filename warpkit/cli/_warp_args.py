"""``warpkit warp``'s options: argparse only, no numpy or torch, so that ``warpkit warp --help`` and usage
errors answer at once. The command itself is :mod:`warpkit.cli._warp`."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

__all__ = ["add_arguments"]

_PROG = "warpkit warp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Warp an image file. The transform maps source -> destination pixels (x right, y down, pixel centres at "
        "integers), like the M of cv2.warpAffine."
    )
    parser.add_argument("input", help="image file to read (PNG, JPEG, TIFF, ...; 8/16-bit or float; gray or colour)")
    parser.add_argument("output", help="image file to write; its extension picks the format")
    how = parser.add_argument_group("transform (give exactly one of --matrix, --params, --src/--dst, --transform)")
    how.add_argument(
        "--matrix", help="6 numbers (affine, 2x3 row-major) or 9 (projective, 3x3), separated by , ; or spaces"
    )
    how.add_argument(
        "--params", help="JSON list: the family's STN parameter vector (needs --family; see --align-corners)"
    )
    how.add_argument("--src", help="control points 'x,y;x,y;...' in the input image (with --dst; family default tps)")
    how.add_argument("--dst", help="where each --src point goes in the output")
    how.add_argument(
        "--transform", metavar="FILE.json", help='JSON: {"family": ..., and "matrix" | "params" | "src"+"dst"}'
    )
    how.add_argument("--family", help="registered family name (see `warpkit families`)")
    how.add_argument("--align-corners", action="store_true", help="the frame of --params (as torch's affine_grid)")
    how.add_argument("--regularization", type=float, default=None, help="TPS smoothing for --src/--dst (default 0)")
    parser.add_argument("--size", help="output size HxW (default: the input's)")
    parser.add_argument("--interpolation", default="bilinear", help="nearest, bilinear or bicubic (default bilinear)")
    parser.add_argument(
        "--padding", default="zeros", help="zeros, constant, replicate, reflect, reflect101 or wrap (default zeros)"
    )
    parser.add_argument(
        "--fill",
        default="0",
        help="value(s) outside the image with --padding constant, in the image's units: one value for every channel, "
        "or one per channel in the order you see them, R,G,B or R,G,B,A (not the file's BGR order)",
    )
    parser.add_argument(
        "--antialias",
        action="store_true",
        help="average each output pixel's footprint where the warp shrinks the image",
    )
    parser.add_argument("--compare-opencv", action="store_true", help="also warp with OpenCV and print the difference")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument(
        "--max-pixels",
        help="refuse input (checked from the file's header, before decoding) and output images above this many "
        "pixels (default 2**27 = 134,217,728, or WARPKIT_MAX_IMAGE_PIXELS)",
    )

    def one_line_error(message: str) -> NoReturn:  # argparse would print the usage first
        _fail(message)
        raise SystemExit(2)

    parser.error = one_line_error  # type: ignore[method-assign]


def _fail(message: str) -> None:
    print(f"{_PROG}: error: {' '.join(message.split())}", file=sys.stderr)
