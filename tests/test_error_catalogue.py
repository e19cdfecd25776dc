"""Every error warpkit raises on purpose, one test each, kept in step with docs/errors.md.

Each case names the error class, the argument the message must start with, and a piece of what came
(the bad value) that the message must show. Messages read ``<argument>: expected <...>, got <...>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
import torch

import warpkit as wk
from warpkit import _io, _opencv

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

IMAGE = torch.rand(1, 3, 8, 8)
GRID = torch.zeros(1, 2, 2, 2)
EYE23 = torch.eye(2, 3)
SQUARE = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
CUBIC_REFLECT101 = _opencv.cv2_options("bicubic", "reflect101")
LINE = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
REFLECT = _opencv.cv2_options("bilinear", "reflect")
CRAFTED = Path(__file__).resolve().parent / "data" / "crafted"


class BadShape(wk.Affine):
    """A faulty plugin-like family: its points come back without the batch axis."""

    name = "badshape"
    has_matrix = False

    def map_points(self, points):
        return super().map_points(points).reshape(-1, 2)

    def inverse(self):
        return type(self)(super().inverse().matrix[:, :2])


def _far(value: float) -> np.ndarray:
    grid = np.zeros((2, 2, 2))
    grid[0, 0, 0] = value
    return grid


class Case(NamedTuple):
    id: str
    call: Callable[[], object]
    error: type[Exception]
    argument: str  # the message starts with "<argument>:"
    got: str  # what came, as the message shows it


def _with_limit(limit: int, call: Callable[[], object]) -> Callable[[], object]:
    def run():
        old = wk.set_max_output_elements(limit)
        try:
            return call()
        finally:
            wk.set_max_output_elements(old)

    return run


CASES = [
    # images and grids
    Case("image-rank", lambda: wk.warp(torch.rand(8, 8), wk.Affine(EYE23)), wk.ShapeError, "image", "(8, 8)"),
    Case(
        "image-integer", lambda: wk.warp(IMAGE.to(torch.uint8), wk.Affine(EYE23)), wk.DTypeError, "image", "torch.uint8"
    ),
    Case(
        "image-complex", lambda: wk.sample(IMAGE.to(torch.complex64), GRID), wk.DTypeError, "image", "torch.complex64"
    ),
    Case("image-not-tensor", lambda: wk.warp(IMAGE.numpy(), wk.Affine(EYE23)), wk.DTypeError, "image", "ndarray"),
    Case("grid-shape", lambda: wk.sample(IMAGE, torch.zeros(1, 2, 2, 3)), wk.ShapeError, "grid", "(1, 2, 2, 3)"),
    Case("grid-integer", lambda: wk.sample(IMAGE, GRID.long()), wk.DTypeError, "grid", "torch.int64"),
    Case(
        "image-grid-batch",
        lambda: wk.sample(IMAGE.expand(2, -1, -1, -1), GRID.expand(3, -1, -1, -1)),
        wk.ShapeError,
        "image and grid",
        "2 and 3",
    ),
    Case(
        "warp-batch",
        lambda: wk.warp(IMAGE.expand(2, -1, -1, -1), wk.Affine(EYE23.expand(3, 2, 3))),
        wk.ShapeError,
        "image and transform",
        "2 and 3",
    ),
    Case("device-mismatch", lambda: wk.sample(IMAGE, GRID.to("meta")), wk.DeviceError, "grid", "meta"),
    # modes and fill
    Case(
        "interpolation-unknown",
        lambda: wk.sample(IMAGE, GRID, interpolation="lanczos"),
        wk.ModeError,
        "interpolation",
        "'lanczos'",
    ),
    Case("padding-unknown", lambda: wk.sample(IMAGE, GRID, padding="mirror"), wk.ModeError, "padding", "'mirror'"),
    Case(
        "padding-reflection",
        lambda: wk.sample(IMAGE, GRID, padding="reflection"),
        wk.ModeError,
        "padding",
        "'reflection' (torch's",
    ),
    Case(
        "opencv-cubic-reflect101-1px",  # the OpenCV reference (report, kit, warp --compare-opencv) would hang
        lambda: _opencv.remap(np.zeros((1, 5, 3), np.float32), np.zeros((2, 2, 2)), CUBIC_REFLECT101),
        wk.ModeError,
        "padding",
        "1x5",
    ),
    Case(
        "fill-length",
        lambda: wk.sample(IMAGE, GRID, padding="constant", fill=(1.0, 2.0)),
        wk.ShapeError,
        "fill",
        "(2,)",
    ),
    Case(
        "fill-overflow",
        lambda: wk.sample(IMAGE, GRID, padding="constant", fill=1e300),
        wk.DTypeError,
        "fill",
        "1e+300",
    ),
    Case("backend-unknown", lambda: wk.backend("numba").__enter__(), wk.BackendError, "name", "'numba'"),
    Case(
        "fill-not-number",
        lambda: wk.sample(IMAGE, GRID, padding="constant", fill="red"),
        wk.ShapeError,
        "fill",
        "'red'",
    ),
    # sizes and the size limit
    Case("size-negative", lambda: wk.warp(IMAGE, wk.Affine(EYE23), (-1, 4)), wk.ShapeError, "size", "(-1, 4)"),
    Case("size-not-pair", lambda: wk.warp(IMAGE, wk.Affine(EYE23), 4), wk.ShapeError, "size", "got 4"),
    Case("size-float", lambda: wk.Affine(EYE23).grid((4.0, 4)), wk.ShapeError, "size", "(4.0, 4)"),
    Case(
        "size-limit-warp",
        lambda: wk.warp(IMAGE, wk.Affine(EYE23), (100_000, 100_000)),
        wk.SizeLimitError,
        "size",
        "1x3x100000x100000 = 30,000,000,000",
    ),
    Case(
        "size-limit-sample",
        lambda: wk.sample(IMAGE.expand(100_000, -1, -1, -1), torch.zeros(1, 100, 100, 2)),
        wk.SizeLimitError,
        "grid",
        "100000x3x100x100 = 3,000,000,000",
    ),
    Case(
        "size-limit-grid",
        _with_limit(1000, lambda: wk.Affine(EYE23).grid((40, 40))),
        wk.SizeLimitError,
        "size",
        "1x2x40x40 = 3,200",
    ),
    Case("size-limit-value", lambda: wk.set_max_output_elements(-5), wk.SizeLimitError, "limit", "-5"),
    # transforms and matrices
    Case("transform-type", lambda: wk.warp(IMAGE, torch.eye(3)), wk.WarpkitError, "transform", "Tensor"),
    Case("affine-shape", lambda: wk.Affine(torch.eye(3, 2)), wk.ShapeError, "matrix", "(3, 2)"),
    Case("affine-last-row", lambda: wk.Affine(torch.ones(3, 3)), wk.ShapeError, "matrix", "[[1.0, 1.0, 1.0]]"),
    Case("projective-shape", lambda: wk.Projective(EYE23), wk.ShapeError, "matrix", "(2, 3)"),
    Case("matrix-complex", lambda: wk.Affine(EYE23.to(torch.complex64)), wk.DTypeError, "matrix", "torch.complex64"),
    Case("matrix-not-numbers", lambda: wk.Projective("eye"), wk.DTypeError, "matrix", "str"),
    Case(
        "inverse-singular",
        lambda: wk.Affine(torch.zeros(2, 3)).inverse(),
        wk.SingularMatrixError,
        "matrix",
        "singular one at batch index 0",
    ),
    Case(
        "inverse-singular-projective",
        lambda: wk.Projective(torch.ones(3, 3)).inverse(),
        wk.SingularMatrixError,
        "matrix",
        "singular one at batch index 0",
    ),
    Case(
        "inverse-nonfinite",
        lambda: wk.Projective(torch.tensor([[1.0, 0, float("inf")], [0, 1, 0], [0, 0, 1]])).inverse(),
        wk.SingularMatrixError,
        "matrix",
        "inf",
    ),
    Case(
        "warp-nonfinite-matrix",
        lambda: wk.warp(IMAGE, wk.Affine(torch.full((2, 3), float("nan")))),
        wk.SingularMatrixError,
        "matrix",
        "nan",
    ),
    Case(
        "params-singular",
        lambda: wk.Affine.from_params(torch.zeros(1, 6), (8, 8)),
        wk.SingularMatrixError,
        "params",
        "singular ones at batch index 0",
    ),
    Case(
        "params-shape", lambda: wk.Projective.from_params(torch.zeros(2, 6), (8, 8)), wk.ShapeError, "params", "(2, 6)"
    ),
    Case(
        "params-shape-tps",
        lambda: wk.ThinPlateSpline.from_params(torch.zeros(1, 7), (8, 8)),
        wk.ShapeError,
        "params",
        "(1, 7)",
    ),
    Case(
        "params-size-empty",
        lambda: wk.Affine.from_params(torch.zeros(1, 6), (0, 8)),
        wk.ShapeError,
        "src_size",
        "(0, 8)",
    ),
    Case("identity-batch-size", lambda: wk.Projective.identity(-1), wk.ShapeError, "batch_size", "-1"),
    Case(
        "params-size", lambda: wk.Affine.from_params(torch.zeros(1, 6), (8, -8)), wk.ShapeError, "src_size", "(8, -8)"
    ),
    Case(
        "points-shape", lambda: wk.Affine(EYE23).transform_points(torch.zeros(4, 3)), wk.ShapeError, "points", "(4, 3)"
    ),
    Case(
        "points-batch",
        lambda: wk.Affine(EYE23.expand(2, 2, 3)).transform_points(torch.zeros(3, 4, 2)),
        wk.ShapeError,
        "transform and points",
        "2 and 3",
    ),
    Case(
        "points-device",
        lambda: wk.Affine(EYE23).transform_points(torch.zeros(4, 2, device="meta")),
        wk.DeviceError,
        "points",
        "meta",
    ),
    Case("compose-type", lambda: wk.Affine(EYE23).then(3), wk.WarpkitError, "other", "int"),
    Case(
        "compose-batch",
        lambda: wk.Affine(EYE23.expand(2, 2, 3)).then(wk.Affine(EYE23.expand(3, 2, 3))),
        wk.ShapeError,
        "composed transforms",
        "2 and 3",
    ),
    # estimates and fits
    Case(
        "estimate-too-few", lambda: wk.Affine.estimate(SQUARE[:2], SQUARE[:2]), wk.DegenerateInputError, "src", "got 2"
    ),
    Case(
        "estimate-too-few-projective",
        lambda: wk.Projective.estimate(SQUARE[:3], SQUARE[:3]),
        wk.DegenerateInputError,
        "src",
        "got 3",
    ),
    Case(
        "estimate-duplicate",
        lambda: wk.Affine.estimate(torch.ones(4, 2), SQUARE),
        wk.DegenerateInputError,
        "src",
        "collinear or coincident",
    ),
    Case(
        "estimate-collinear",
        lambda: wk.Affine.estimate(LINE, SQUARE),
        wk.DegenerateInputError,
        "src",
        "collinear or coincident",
    ),
    Case(
        "estimate-collinear-projective",
        lambda: wk.Projective.estimate(LINE, SQUARE),
        wk.DegenerateInputError,
        "src, dst",
        "collinear or repeated",
    ),
    Case(
        "estimate-nonfinite",
        lambda: wk.Affine.estimate(SQUARE, SQUARE * float("nan")),
        wk.DegenerateInputError,
        "src, dst",
        "NaN or infinity",
    ),
    Case("estimate-count", lambda: wk.Affine.estimate(SQUARE, SQUARE[:3]), wk.ShapeError, "dst", "got 3"),
    Case(
        "estimate-batch",
        lambda: wk.Affine.estimate(SQUARE.expand(2, -1, -1), SQUARE.expand(3, -1, -1)),
        wk.ShapeError,
        "src and dst",
        "2 and 3",
    ),
    Case(
        "weights-shape", lambda: wk.Affine.estimate(SQUARE, SQUARE, torch.ones(3)), wk.ShapeError, "weights", "(1, 3)"
    ),
    Case(
        "weights-negative",
        lambda: wk.Affine.estimate(SQUARE, SQUARE, -torch.ones(4)),
        wk.DegenerateInputError,
        "weights",
        "minimum -1.0",
    ),
    Case(
        "tps-too-few", lambda: wk.ThinPlateSpline.fit(SQUARE[:2], SQUARE[:2]), wk.DegenerateInputError, "src", "got 2"
    ),
    Case(
        "tps-collinear",
        lambda: wk.ThinPlateSpline.fit(LINE, SQUARE),
        wk.DegenerateInputError,
        "src",
        "collinear or coincident",
    ),
    Case(
        "tps-duplicate",
        lambda: wk.ThinPlateSpline.fit(torch.cat([SQUARE, SQUARE[:1]]), torch.cat([SQUARE, SQUARE[1:2]])),
        wk.DegenerateInputError,
        "src",
        "singular system",
    ),
    Case(
        "tps-regularization",
        lambda: wk.ThinPlateSpline.fit(SQUARE, SQUARE, -1.0),
        wk.DegenerateInputError,
        "regularization",
        "-1.0",
    ),
    Case(
        "tps-regularization-frame",
        lambda: wk.ThinPlateSpline.fit(SQUARE.double() * 1e-200, SQUARE.double() * 1e-200, 1.0),
        wk.DegenerateInputError,
        "regularization",
        "1.0",
    ),
    Case(
        "tps-coordinates-overflow",
        lambda: wk.ThinPlateSpline.fit(SQUARE.double() * 1e200, SQUARE.double() * 1e200),
        wk.DegenerateInputError,
        "src, dst",
        "4e+200",
    ),
    Case(
        "weights-too-few",
        lambda: wk.Projective.estimate(SQUARE, SQUARE, torch.zeros(4)),
        wk.DegenerateInputError,
        "weights",
        "got 0",
    ),
    Case(
        "weights-device",
        lambda: wk.Affine.estimate(SQUARE, SQUARE, torch.ones(4, device="meta")),
        wk.DeviceError,
        "weights",
        "meta",
    ),
    Case(
        "to-params-singular",
        lambda: wk.Affine(torch.zeros(2, 3)).to_params((8, 8)),
        wk.SingularMatrixError,
        "matrix",
        "singular",
    ),
    Case("identity-dtype", lambda: wk.Affine.identity(1, dtype="float32"), wk.DTypeError, "dtype", "'float32'"),
    Case("batch-size-limit", lambda: wk.Affine.identity(10**12), wk.SizeLimitError, "batch_size", "1,000,000,000,000"),
    Case("size-bytes", lambda: wk.warp(IMAGE, wk.Affine(EYE23), b"44"), wk.ShapeError, "size", "b'44'"),
    Case("map-points-shape", lambda: BadShape(EYE23).grid((4, 5)), wk.ShapeError, "BadShape.map_points", "(20, 2)"),
    # the OpenCV reference: inputs on which OpenCV 5 would not return
    Case(
        "opencv-reflect-nonfinite",
        lambda: _opencv.remap(np.zeros((4, 5), np.float32), _far(np.nan), REFLECT),
        wk.ModeError,
        "grid",
        "1 non-finite",
    ),
    Case(
        "opencv-reflect-far",
        lambda: _opencv.remap(np.zeros((4, 5), np.float32), _far(1e30), REFLECT),
        wk.ModeError,
        "grid",
        "1e+30",
    ),
    # image files (the command line)
    Case(
        "input-pixel-limit",
        lambda: _io.read_image(CRAFTED / "bomb-100000x100000.png"),
        _io.ImageIOError,
        "input",
        "100000x100000",
    ),
    Case(
        "output-format-alpha",
        lambda: _io.check_encodable("out.jpg", np.uint8, 4),
        _io.ImageIOError,
        "output",
        "'.jpg', which would store it as uint8 colour image",
    ),
    # registry
    Case(
        "family-unknown", lambda: wk.get_family("similarity-nope"), wk.UnknownFamilyError, "name", "'similarity-nope'"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_error(case: Case):
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    assert message.startswith(f"{case.argument}: "), message
    assert "expected" in message and "got" in message, message
    assert message.index("expected") < message.index("got"), message
    assert case.got in message.split("got", 1)[1] or case.got in message, message
    assert "\n" not in message


def test_errors_are_warpkit_errors_and_builtin_kinds():
    """Every public error is catchable as WarpkitError and as the matching built-in exception."""
    kinds = {
        wk.ShapeError: ValueError,
        wk.DTypeError: TypeError,
        wk.DeviceError: ValueError,
        wk.ModeError: ValueError,
        wk.SingularMatrixError: np.linalg.LinAlgError,
        wk.DegenerateInputError: ValueError,
        wk.SizeLimitError: ValueError,
        wk.UnknownFamilyError: KeyError,
        wk.PluginLoadError: ImportError,
    }
    for error, builtin in kinds.items():
        assert issubclass(error, wk.WarpkitError) and issubclass(error, builtin), error


def _documented() -> dict[str, tuple[str, str]]:
    """``id -> (error class, argument)`` from the table rows of docs/errors.md."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([a-z0-9-]+)`\s*\|[^|]*\|\s*`(\w+)`\s*\|\s*`([^`]+?):", line)
        if match:
            rows[match[1]] = (match[2], match[3])
    return rows


def test_doc_lists_exactly_the_tested_errors():
    documented = _documented()
    assert sorted(documented) == sorted(case.id for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_doc_row_matches_code(case: Case):
    error_name, argument = _documented()[case.id]
    with pytest.raises(case.error) as info:
        case.call()
    assert type(info.value).__name__ == error_name
    assert argument == case.argument
