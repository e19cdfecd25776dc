"""``warpkit warp``: warp an image file (PNG, JPEG, TIFF; 8/16-bit or float; gray or colour) with any family.

The transform comes from exactly one of ``--matrix``, ``--params`` (with ``--family``), ``--src``/``--dst``
or ``--transform FILE.json``. Pixel values keep their scale (``--fill`` is in the image's units) and the
output has the input's dtype (integers rounded and clipped). Errors print one line and exit with 2; the
output is written atomically and an existing file is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings

import numpy as np
import torch

from .._base import Transform
from .._errors import ModeError, WarpkitError
from .._io import read_image, write_image
from .._modes import Interpolation, Padding, parse_mode
from .._opencv import cv2_options, remap, warp_matrix
from .._registry import get_family
from .._warp import warp
from ._warp_args import add_arguments  # the options live apart so that --help imports neither numpy nor torch

__all__ = ["add_arguments", "run", "build_transform"]

_PROG = "warpkit warp"
_TRANSFORM_KEYS = ("family", "matrix", "params", "align_corners", "src", "dst", "regularization")


class _UsageError(WarpkitError, ValueError):
    """A command-line value that does not parse."""


def run(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _run(args)
        for warning in caught:
            print(f"{_PROG}: warning: {_one_line(str(warning.message))}", file=sys.stderr)
    except (WarpkitError, OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        _fail(str(exc) if isinstance(exc, WarpkitError) else f"{type(exc).__name__}: {exc}")
        return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    interpolation = parse_mode(Interpolation, args.interpolation, "--interpolation")
    padding = parse_mode(Padding, args.padding, "--padding")
    fill = _numbers(args.fill, "--fill")
    if not fill:
        raise _UsageError(f"--fill: expected a number or one number per channel, got {args.fill!r}")
    _check_output_early(args.output, args.force)
    image = read_image(args.input)
    src_size = image.shape[:2]
    size = src_size if args.size is None else _parse_size(args.size)
    transform = build_transform(_transform_spec(args), src_size, size)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if len(fill) not in (1, channels):
        raise _UsageError(f"--fill: expected 1 or {channels} numbers (one per channel), got {len(fill)}")

    chw = torch.from_numpy(np.ascontiguousarray(image.reshape(*src_size, channels).transpose(2, 0, 1)).astype(np.float32))
    out = warp(chw, transform, size, interpolation=interpolation, padding=padding, fill=tuple(fill))
    warped = out.permute(1, 2, 0).numpy()
    result = _to_dtype(warped, image.dtype).reshape(*size, channels)
    if image.ndim == 2:
        result = result[..., 0]
    write_image(args.output, result, overwrite=args.force)
    print(f"wrote {args.output}: {size[0]}x{size[1]}, {channels} channel(s), {image.dtype}, {transform!r}")
    if args.compare_opencv:
        _compare_opencv(image, transform, size, interpolation, padding, fill, warped, result)


def build_transform(spec: dict, src_size: tuple[int, int], dst_size: tuple[int, int]) -> Transform:
    """A transform from a JSON-like ``spec`` (see the module docstring); sizes are ``(H, W)``.

    ``{"matrix": 2x3 | 3x3}`` (affine | projective, or ``"family"`` with a matrix family),
    ``{"family", "params", "align_corners"}`` (any family with an STN parameter vector, via ``from_params``),
    ``{"src", "dst", "family" (default "tps"), "regularization"}`` (``fit`` / ``estimate``).
    """
    if not isinstance(spec, dict):
        raise _UsageError(f"transform: expected a JSON object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_TRANSFORM_KEYS))
    if unknown:
        raise _UsageError(f"transform: expected keys among {', '.join(_TRANSFORM_KEYS)}, got {', '.join(unknown)}")
    given = [key for key in ("matrix", "params", "src") if spec.get(key) is not None]
    if spec.get("dst") is not None and "src" not in given:
        raise _UsageError("src: expected control points to go with dst, got none")
    if len(given) != 1:
        raise _UsageError(
            "transform: expected exactly one of a matrix, params, or src and dst, got "
            + (", ".join(given) if given else "none")
        )
    name = spec.get("family")
    if name is not None and not isinstance(name, str):
        raise _UsageError(f"family: expected a name, got {name!r}")

    if given == ["matrix"]:
        matrix = _array(spec["matrix"], "matrix")
        if name is None:
            name = {(2, 3): "affine", (3, 3): "projective"}.get(tuple(matrix.shape))
            if name is None:
                raise _UsageError(f"matrix: expected 2x3 (affine) or 3x3 (projective) numbers, got shape {tuple(matrix.shape)}")
        family = get_family(name)
        if not family.has_matrix:
            raise _UsageError(f"family: expected a family that takes a matrix (affine, projective), got {name!r}")
        return family(matrix)

    if given == ["params"]:
        if name is None:
            raise _UsageError("family: expected a family name to go with params, got none")
        family = get_family(name)
        if family.num_params is None:
            raise _UsageError(f"params: expected a family with an STN parameter vector, got {name!r} (num_params is None)")
        params = _array(spec["params"], "params").reshape(1, -1)
        align = spec.get("align_corners", False)
        if not isinstance(align, bool):
            raise _UsageError(f"align_corners: expected true or false, got {align!r}")
        return family.from_params(params, src_size, dst_size, align_corners=align)

    if spec.get("dst") is None:
        raise _UsageError("dst: expected control points to go with src, got none")
    src, dst = _array(spec["src"], "src"), _array(spec["dst"], "dst")
    family = get_family(name or "tps")
    regularization = spec.get("regularization")
    if hasattr(family, "fit"):
        return family.fit(src, dst, 0.0 if regularization is None else regularization)
    if regularization is not None:
        raise _UsageError(f"regularization: expected only with the tps family, got it with {family.name!r}")
    if not family.can_estimate():
        raise _UsageError(f"family: expected a family that can be estimated from points, got {family.name!r}")
    return family.estimate(src, dst)


def _transform_spec(args: argparse.Namespace) -> dict:
    sources = [flag for flag, value in (("--matrix", args.matrix), ("--params", args.params), ("--src", args.src),
                                         ("--transform", args.transform)) if value is not None]
    if args.dst is not None and args.src is None:
        raise _UsageError("--src: expected control points to go with --dst, got none")
    if len(sources) != 1:
        raise _UsageError(
            "transform: expected exactly one of --matrix, --params, --src/--dst, --transform, got "
            + (" ".join(sources) if sources else "none")
        )
    if args.transform is not None:
        spec = _load_json_file(args.transform)
        if isinstance(spec, dict) and args.family is not None:
            spec.setdefault("family", args.family)
        return spec
    spec: dict = {"family": args.family}
    if args.matrix is not None:
        values = _numbers(args.matrix, "--matrix")
        shapes = {6: (2, 3), 9: (3, 3)}
        if len(values) not in shapes:
            raise _UsageError(f"--matrix: expected 6 (affine) or 9 (projective) numbers, got {len(values)}")
        spec["matrix"] = np.reshape(values, shapes[len(values)]).tolist()
    elif args.params is not None:
        try:
            spec["params"] = json.loads(args.params)
        except json.JSONDecodeError as exc:
            raise _UsageError(f"--params: expected a JSON list of numbers, got {args.params!r} ({exc.msg})") from None
        spec["align_corners"] = args.align_corners
    else:
        spec["src"], spec["dst"] = _points(args.src, "--src"), _points(args.dst, "--dst")
        spec["regularization"] = args.regularization
    return spec


def _load_json_file(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise _UsageError(f"--transform: expected an existing JSON file, got {path!r} (no such file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"--transform: expected a readable JSON file, got {path!r} ({exc})") from None
    except json.JSONDecodeError as exc:
        raise _UsageError(f"--transform: expected JSON, got {path!r} ({exc.msg} at line {exc.lineno})") from None


def _numbers(text: str, argument: str) -> list[float]:
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise _UsageError(f"{argument}: expected numbers separated by ',' ';' or spaces, got {text!r}") from None


def _points(text: str | None, argument: str) -> list[list[float]]:
    if text is None:
        raise _UsageError(f"{argument}: expected points 'x,y;x,y;...', got none")
    values = _numbers(text, argument)
    if not values or len(values) % 2:
        raise _UsageError(f"{argument}: expected points 'x,y;x,y;...' (an even count of numbers), got {text!r}")
    return np.reshape(values, (-1, 2)).tolist()


def _array(value: object, argument: str) -> torch.Tensor:
    """A float64 tensor from JSON numbers (float64 keeps the grid exact to well below a pixel)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _UsageError(f"{argument}: expected a (nested) list of numbers, got {value!r}") from None
    return torch.from_numpy(array)


def _parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if match is None or 0 in (int(match[1]), int(match[2])):
        raise _UsageError(f"--size: expected HxW with positive integers (e.g. 480x640), got {text!r}")
    return int(match[1]), int(match[2])


def _check_output_early(path: str, force: bool) -> None:
    """Fail before any work on outputs that cannot be written."""
    import cv2

    if not force and os.path.lexists(path):
        raise _UsageError(f"output: expected a path that does not exist yet, got {path!r} (use --force to overwrite)")
    if not cv2.haveImageWriter(path):
        raise _UsageError(f"output: expected an image extension OpenCV can write (.png, .jpg, .tif, ...), got {path!r}")


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results in ``dtype``: integers are rounded half to even and clipped to the dtype's range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def opencv_warp(image: np.ndarray, transform: Transform, size, interpolation, padding, fill) -> tuple[np.ndarray, str]:
    """The same warp done by OpenCV on ``image`` (``(H, W)`` or ``(H, W, C)``): warpAffine or
    warpPerspective for matrix families, remap of ``transform.grid`` otherwise. Returns the result and
    the function used."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    options = cv2_options(interpolation, padding, fill, channels)
    if transform.has_matrix:
        return warp_matrix(image, transform.matrix[0].double().numpy(), size, options)
    return remap(image, transform.grid(size)[0].double().numpy(), options), "cv2.remap"


def _compare_opencv(image, transform, size, interpolation, padding, fill, warped, result) -> None:
    try:
        reference, function = opencv_warp(image.astype(np.float32), transform, size, interpolation, padding, fill)
    except ModeError as error:  # OpenCV cannot do this warp; the output is written all the same
        print(f"compare-opencv: skipped: {error}")
        return
    difference = np.abs(warped.reshape(reference.shape) - reference)
    print(f"compare-opencv: {function}, max |warpkit - OpenCV| = {difference.max(initial=0.0):.3g} on float32 values "
          f"(mean {difference.mean() if difference.size else 0.0:.3g})")
    if np.issubdtype(image.dtype, np.integer):
        native, _ = opencv_warp(image, transform, size, interpolation, padding, fill)
        steps = np.abs(result.astype(np.int64) - native.reshape(result.shape).astype(np.int64))
        print(f"compare-opencv: {image.dtype} output vs {function} on {image.dtype}: max {steps.max(initial=0)} "
              f"level(s), {int((steps > 0).sum())} of {steps.size} values differ")


def _fail(message: str) -> None:
    print(f"{_PROG}: error: {_one_line(message)}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())
