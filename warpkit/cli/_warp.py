"""``warpkit warp``: warp an image file (PNG, JPEG, TIFF; 8/16-bit or float; gray or colour) with any family.

The transform comes from exactly one of ``--matrix``, ``--params`` (with ``--family``), ``--src``/``--dst``
or ``--transform FILE.json`` (strict JSON: numbers are numbers, lists have the shape they should).
Pixel values keep their scale (``--fill`` is in the image's units, one value or one per channel in
RGB(A) order as the image is seen, whatever order the file stores) and the output has the input's dtype
(integers rounded and clipped).

Failures print one line on stderr and exit with 2 (Ctrl-C: ``interrupted``, 130; SIGTERM: ``terminated``,
143), with no traceback and no file left behind: the output is written atomically, its temporary removed
on any failure or signal, and a SIGKILL's leftover is removed by the next run. Images larger than
``--max-pixels`` are refused from their header, before decoding. An existing output is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import warnings

import numpy as np
import torch

from .._base import Transform
from .._errors import ModeError, WarpkitError
from .._io import check_encodable, max_pixels_from_environment, read_image, write_image
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


class _Terminated(BaseException):
    """SIGTERM, raised where the program is so that ``finally`` blocks (the temporary file's) run."""


def run(args: argparse.Namespace) -> int:
    """Run ``warpkit warp``; returns the exit status (0, 2 on any failure, 130 interrupted, 143 terminated)."""
    previous = _on_sigterm()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _run(args)
        for warning in caught:
            print(f"{_PROG}: warning: {_one_line(str(warning.message))}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"{_PROG}: terminated", file=sys.stderr)
        return 143
    except WarpkitError as exc:
        _fail(str(exc))
        return 2
    except MemoryError:
        _fail(
            "memory: expected enough memory for this image and output, got an allocation failure (lower --size "
            "or --max-pixels)"
        )
        return 2
    except ModuleNotFoundError as exc:  # OpenCV missing: name the extra that installs it
        from . import missing_extra  # noqa: PLC0415

        _fail(missing_extra(exc) or f"{type(exc).__name__}: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - a command line answers in one line, never a traceback
        _fail(f"{type(exc).__name__}: {exc}")
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _on_sigterm():
    """Turn SIGTERM into :class:`_Terminated` while the command runs; returns the previous handler."""

    def terminate(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _run(args: argparse.Namespace) -> None:
    interpolation = parse_mode(Interpolation, args.interpolation, "--interpolation")
    padding = parse_mode(Padding, args.padding, "--padding")
    fill = _numbers(args.fill, "--fill")
    if not fill:
        raise _UsageError(f"--fill: expected a number or one number per channel, got {args.fill!r}")
    max_pixels = _max_pixels(getattr(args, "max_pixels", None))
    _check_output_early(args.output, args.force)
    image = read_image(args.input, max_pixels)
    src_size = image.shape[:2]
    size = src_size if args.size is None else _parse_size(args.size)
    if size[0] * size[1] > max_pixels:
        raise _UsageError(
            f"--size: expected an output of at most {max_pixels:,} pixels (--max-pixels raises the "
            f"limit), got {size[0]}x{size[1]} = {size[0] * size[1]:,}"
        )
    channels = 1 if image.ndim == 2 else image.shape[2]
    check_encodable(args.output, image.dtype, channels)  # before the work: JPEG cannot hold alpha or 16 bits
    stored_fill = _fill_in_stored_order(fill, channels)
    transform = build_transform(_transform_spec(args), src_size, size)

    chw = torch.from_numpy(
        np.ascontiguousarray(image.reshape(*src_size, channels).transpose(2, 0, 1)).astype(np.float32)
    )
    out = warp(
        chw, transform, size, interpolation=interpolation, padding=padding, fill=stored_fill, antialias=args.antialias
    )
    warped = out.permute(1, 2, 0).numpy()
    result = _to_dtype(warped, image.dtype).reshape(*size, channels)
    if image.ndim == 2:
        result = result[..., 0]
    comparison = (
        _compare_opencv(image, transform, size, interpolation, padding, stored_fill, warped, result)
        if args.compare_opencv
        else []
    )
    write_image(args.output, result, overwrite=args.force)
    print(f"wrote {args.output}: {size[0]}x{size[1]}, {channels} channel(s), {image.dtype}, {transform!r}")
    for line in comparison:
        print(line)


def _max_pixels(value: object) -> int:
    if value is None:
        return max_pixels_from_environment()
    if isinstance(value, int) and value > 0:
        return value
    text = str(value).strip().replace("_", "")
    if not text.isdigit() or int(text) < 1:
        raise _UsageError(f"--max-pixels: expected a positive number of pixels, got {value!r}")
    return int(text)


def _fill_in_stored_order(fill: list[float], channels: int) -> float | tuple[float, ...]:
    """``--fill`` as the sampler takes it: one number for every channel, or one per channel given in RGB(A)
    order (as the user sees the image) and put in the file's BGR(A) order for 3 and 4 channels."""
    if len(fill) == 1:
        return fill[0]
    if len(fill) != channels:
        raise _UsageError(
            f"--fill: expected 1 number or {channels} (one per channel, in {_channel_names(channels)} order), "
            f"got {len(fill)}"
        )
    if channels in (3, 4):
        fill = [fill[2], fill[1], fill[0], *fill[3:]]
    return tuple(fill)


def _channel_names(channels: int) -> str:
    return {1: "gray", 2: "gray, alpha", 3: "R, G, B", 4: "R, G, B, A"}.get(channels, "stored")


def build_transform(spec: object, src_size: tuple[int, int], dst_size: tuple[int, int]) -> Transform:
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
            by_shape: dict[tuple[int, ...], str] = {(2, 3): "affine", (3, 3): "projective"}
            name = by_shape.get(tuple(matrix.shape))
            if name is None:
                raise _UsageError(
                    f"matrix: expected 2x3 (affine) or 3x3 (projective) numbers, got shape {tuple(matrix.shape)}"
                )
        family = get_family(name)
        if not family.has_matrix:
            raise _UsageError(f"family: expected a family that takes a matrix (affine, projective), got {name!r}")
        return family(matrix)  # type: ignore[call-arg]  # a matrix family's constructor takes the matrix

    if given == ["params"]:
        if name is None:
            raise _UsageError("family: expected a family name to go with params, got none")
        family = get_family(name)
        if family.num_params is None:
            raise _UsageError(
                f"params: expected a family with an STN parameter vector, got {name!r} (num_params is None)"
            )
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
    if regularization is not None and (
        isinstance(regularization, bool) or not isinstance(regularization, (int, float))
    ):
        raise _UsageError(f"regularization: expected a number >= 0, got {_short(regularization)}")
    if hasattr(family, "fit"):
        return family.fit(src, dst, 0.0 if regularization is None else regularization)
    if regularization is not None:
        raise _UsageError(f"regularization: expected only with the tps family, got it with {family.name!r}")
    if not family.can_estimate():
        raise _UsageError(f"family: expected a family that can be estimated from points, got {family.name!r}")
    return family.estimate(src, dst)


def _transform_spec(args: argparse.Namespace) -> object:
    sources = [
        flag
        for flag, value in (
            ("--matrix", args.matrix),
            ("--params", args.params),
            ("--src", args.src),
            ("--transform", args.transform),
        )
        if value is not None
    ]
    if args.dst is not None and args.src is None:
        raise _UsageError("--src: expected control points to go with --dst, got none")
    if len(sources) != 1:
        raise _UsageError(
            "transform: expected exactly one of --matrix, --params, --src/--dst, --transform, got "
            + (" ".join(sources) if sources else "none")
        )
    if args.transform is not None:
        loaded = _load_json_file(args.transform)
        if isinstance(loaded, dict) and args.family is not None:
            loaded.setdefault("family", args.family)
        return loaded
    spec: dict = {"family": args.family}
    if args.matrix is not None:
        values = _numbers(args.matrix, "--matrix")
        shapes = {6: (2, 3), 9: (3, 3)}
        if len(values) not in shapes:
            raise _UsageError(f"--matrix: expected 6 (affine) or 9 (projective) numbers, got {len(values)}")
        spec["matrix"] = np.reshape(values, shapes[len(values)]).tolist()
    elif args.params is not None:
        try:
            spec["params"] = _strict_json(args.params, "--params")
        except json.JSONDecodeError as exc:
            raise _UsageError(f"--params: expected a JSON list of numbers, got {args.params!r} ({exc.msg})") from None
        spec["align_corners"] = args.align_corners
    else:
        spec["src"], spec["dst"] = _points(args.src, "--src"), _points(args.dst, "--dst")
        spec["regularization"] = args.regularization
    return spec


def _strict_json(text: str, argument: str) -> object:
    """JSON as the standard has it: no NaN/Infinity literals, no duplicate keys."""

    def constant(name: str):
        raise _UsageError(f"{argument}: expected finite JSON numbers, got {name}")

    def unique(pairs):
        keys = [key for key, _ in pairs]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise _UsageError(
                f"{argument}: expected each key once, got {', '.join(map(repr, duplicates))} more than once"
            )
        return dict(pairs)

    return json.loads(text, parse_constant=constant, object_pairs_hook=unique)


def _load_json_file(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return _strict_json(handle.read(), "--transform")
    except FileNotFoundError:
        raise _UsageError(f"--transform: expected an existing JSON file, got {path!r} (no such file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"--transform: expected a readable JSON file, got {path!r} ({exc})") from None
    except json.JSONDecodeError as exc:
        raise _UsageError(f"--transform: expected JSON, got {path!r} ({exc.msg} at line {exc.lineno})") from None


def _numbers(text: str, argument: str) -> list[float]:
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise _UsageError(f"{argument}: expected numbers separated by ',' ';' or spaces, got {text!r}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise _UsageError(f"{argument}: expected finite numbers, got {text!r}")
    return numbers


def _points(text: str | None, argument: str) -> list[list[float]]:
    if text is None:
        raise _UsageError(f"{argument}: expected points 'x,y;x,y;...', got none")
    values = _numbers(text, argument)
    if not values or len(values) % 2:
        raise _UsageError(f"{argument}: expected points 'x,y;x,y;...' (an even count of numbers), got {text!r}")
    return np.reshape(values, (-1, 2)).tolist()


_SHAPES = {
    "matrix": "2x3 or 3x3 numbers",
    "params": "a flat list of numbers",
    "src": "[[x, y], ...] points",
    "dst": "[[x, y], ...] points",
}


def _array(value: object, argument: str) -> torch.Tensor:
    """A float64 tensor from JSON numbers (float64 keeps the grid exact to well below a pixel). Strict: only
    real numbers (no strings, no true/false, finite), and the nesting ``argument`` has (see :data:`_SHAPES`)."""
    depth = 1 if argument == "params" else 2
    rows = value if depth == 2 else [value]
    expected = _SHAPES.get(argument, "numbers")
    if not isinstance(rows, list) or not rows or not all(isinstance(row, list) and row for row in rows):
        raise _UsageError(f"{argument}: expected {expected}, got {_short(value)}")
    width = len(rows[0])
    for row in rows:
        if len(row) != width or argument in ("src", "dst") and width != 2:
            raise _UsageError(f"{argument}: expected {expected}, got {_short(value)}")
        for number in row:
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                raise _UsageError(
                    f"{argument}: expected {expected} (finite JSON numbers), got {_short(number)} in {_short(value)}"
                )
    return torch.tensor(rows if depth == 2 else rows[0], dtype=torch.float64)


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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


# OpenCV's warps take these depths (not int8, int32, uint32, float16...).
_OPENCV_DEPTHS = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def _compare_opencv(image, transform, size, interpolation, padding, fill, warped, result) -> list[str]:
    """Lines reporting the same warp done by OpenCV; done before the output is written, and never failing the
    command: where OpenCV cannot (or would not return), the line says ``skipped`` and why."""
    import cv2

    fill = fill if isinstance(fill, tuple) else (fill,)
    try:
        reference, function = opencv_warp(image.astype(np.float32), transform, size, interpolation, padding, fill)
    except (ModeError, cv2.error) as error:  # OpenCV cannot do this warp; the output is written all the same
        return [
            f"compare-opencv: skipped: {_one_line(str(error)) if isinstance(error, ModeError) else _cv2_message(error)}"
        ]
    difference = np.abs(warped.reshape(reference.shape) - reference)
    lines = [
        f"compare-opencv: {function}, max |warpkit - OpenCV| = {difference.max(initial=0.0):.3g} on float32 values "
        f"(mean {difference.mean() if difference.size else 0.0:.3g})"
    ]
    if np.issubdtype(image.dtype, np.integer):
        if image.dtype.type not in _OPENCV_DEPTHS:
            return lines + [
                f"compare-opencv: {image.dtype} output vs OpenCV on {image.dtype}: skipped (OpenCV's warps "
                f"take uint8, uint16, int16 and float images)"
            ]
        try:
            native, _ = opencv_warp(image, transform, size, interpolation, padding, fill)
        except cv2.error as error:
            return lines + [f"compare-opencv: {image.dtype} output: skipped: {_cv2_message(error)}"]
        steps = np.abs(result.astype(np.int64) - native.reshape(result.shape).astype(np.int64))
        lines.append(
            f"compare-opencv: {image.dtype} output vs {function} on {image.dtype}: max {steps.max(initial=0)} "
            f"level(s), {int((steps > 0).sum())} of {steps.size} values differ"
        )
    return lines


def _cv2_message(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"OpenCV: {lines[-1] if lines else type(error).__name__}"


def _fail(message: str) -> None:
    print(f"{_PROG}: error: {_one_line(message)}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())
