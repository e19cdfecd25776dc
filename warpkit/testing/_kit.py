"""The checks every transform family must pass, and :func:`check_family`, which runs them.

Each check builds transforms of the family the same way (see :func:`example`), measures one error and
compares it with a stated tolerance. Geometry checks run in float64 with tolerances in pixels; image
checks compare float32 warps with OpenCV and Kornia (measured, they agree to about 3e-5).
A check that does not apply (no matrix form, no estimator, cv2 not installed...) is skipped with a reason.

Rules a family must know (docs/plugins.md lists every method the kit calls):

- STN parameters describe the destination -> source map in torch's normalised frames, like ``F.affine_grid``'s
  ``theta``; ``from_params(identity_params(B))`` is the identity.
- Other output sizes: ``params_grid`` also builds transforms for an output size other than the input's. A
  family that only works at the input's size (lens, elastic) must refuse that with :class:`ShapeError` from
  ``from_params``; the kit then checks it at the input size only. Any other exception is a failure.
- Direction has one word: a family that stores its map one way round says which with ``native``, a
  :class:`warpkit.Direction`; no ``forward=`` / ``inverse=`` flags of its own.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
from collections.abc import Callable, Iterable

import torch

from .._base import Composed, Direction, Transform
from .._coords import pixel_grid
from .._errors import ModeError, ShapeError, WarpkitError
from .._opencv import cv2_options, remap, warp_matrix
from .._registry import get_family
from .._warp import warp

__all__ = ["CHECKS", "CheckResult", "Report", "Skip", "check_family", "example", "example_params"]

#: Image size ``(H, W)`` the checks warp and sample.
SIZE = (24, 32)
#: Standard deviation of the noise added to ``identity_params`` to make example transforms.
PARAM_NOISE = 0.05
#: Geometry in float64: how far (pixels) points may drift in an exact identity (iterative inverses included).
GEOMETRY_TOLERANCE = 1e-6
#: float32 warps vs OpenCV / Kornia, images in [0, 1] (measured agreement: 1e-5 .. 6e-5).
IMAGE_TOLERANCE = 1e-4
#: Analytic vs central-difference Jacobians in float64.
GRADIENT_TOLERANCE = 1e-5
#: A map whose second difference along a parameter step stays below this (pixels, float64) is linear in them.
LINEARITY_TOLERANCE = 1e-8
#: Keyword and attribute names that would be a second word for direction (the one word is ``native``).
OTHER_DIRECTION_WORDS = ("forward", "backward", "reverse", "reversed", "inverted", "inverse", "direction")
#: torch.compile backend; "inductor" compiles for real but takes ~20 s per family on 2 CPU cores.
COMPILE_BACKEND = os.environ.get("WARPKIT_CHECK_COMPILE_BACKEND", "aot_eager")


class Skip(Exception):
    """Raised by a check that does not apply to a family; the message says why."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``passed`` is None when skipped (``detail`` says why)."""

    name: str
    passed: bool | None
    error: float | None = None
    tolerance: float | None = None
    detail: str = ""

    @property
    def skipped(self) -> bool:
        return self.passed is None

    @property
    def status(self) -> str:
        return "skip" if self.passed is None else ("pass" if self.passed else "FAIL")


@dataclasses.dataclass
class Report:
    """Every check of one family. ``passed`` is True when no check failed (skips allowed)."""

    family: str
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.passed is False]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict:
        """JSON-ready: non-finite errors become the strings ``"inf"`` / ``"nan"``."""
        checks = [dataclasses.asdict(r) | {"status": r.status} for r in self.results]
        for check in checks:
            if check["error"] is not None and not math.isfinite(check["error"]):
                check["error"] = str(check["error"])
        return {"family": self.family, "passed": self.passed, "checks": checks}

    def table(self) -> str:
        """A plain-text table: check, status, measured error, tolerance, detail."""
        return format_table([self])

    def __str__(self) -> str:
        return self.table()


def format_table(reports: Iterable[Report]) -> str:
    rows = [("family", "check", "status", "error", "tolerance", "detail")]
    for report in reports:
        for r in report.results:
            rows.append((report.family, r.name, r.status, _number(r.error), _number(r.tolerance), r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


# --- building transforms of any family -----------------------------------------------------------
def example_params(family: type[Transform], batch_size: int, dtype: torch.dtype = torch.float64, seed: int = 0):
    """``(B, num_params)``: the family's own ``example_params`` classmethod if it has one, else
    ``identity_params`` plus seeded noise of std :data:`PARAM_NOISE`."""
    if not family.num_params:
        raise Skip("family has no parameter vector (num_params is None)")
    builder = getattr(family, "example_params", None)
    if callable(builder):
        return builder(batch_size, dtype=dtype, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    base = family.identity_params(batch_size, dtype=torch.float64)
    noise = torch.randn(base.shape, generator=generator, dtype=torch.float64) * PARAM_NOISE
    return (base + noise).to(dtype)


def example(family: type[Transform], batch_size: int = 1, dtype: torch.dtype = torch.float64, seed: int = 0):
    """A non-trivial transform of ``family``: its ``example`` classmethod if it has one, else
    ``from_params`` on :func:`example_params` for an image of :data:`SIZE`."""
    builder = getattr(family, "example", None)
    if callable(builder):
        return builder(batch_size, dtype=dtype, seed=seed)
    if family.num_params:
        return family.from_params(example_params(family, batch_size, dtype, seed), SIZE)
    raise Skip("family has neither num_params nor an example() classmethod, so the kit cannot build one")


def _points(batch: int, count: int = 40, seed: int = 1) -> torch.Tensor:
    """``(B, N, 2)`` float64 points spread over the image of :data:`SIZE` (and a little beyond)."""
    generator = torch.Generator().manual_seed(seed)
    unit = torch.rand(batch, count, 2, generator=generator, dtype=torch.float64)
    height, width = SIZE
    return unit * torch.tensor([width + 1.0, height + 1.0], dtype=torch.float64) - 1.0


def _image(batch: int = 1, channels: int = 3, size=SIZE, dtype=torch.float32, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, *size, generator=generator, dtype=torch.float64).to(dtype)


def _centres(batch: int, size=SIZE) -> torch.Tensor:
    return pixel_grid(size, torch.float64).reshape(1, -1, 2).expand(batch, -1, -1)


def _max(difference: torch.Tensor) -> float:
    """Largest absolute value; NaN anywhere counts as infinitely wrong."""
    if difference.numel() == 0:
        return 0.0
    difference = difference.detach().double()
    if not torch.isfinite(difference).all():
        return math.inf
    return float(difference.abs().max())


# --- the checks ------------------------------------------------------------------------------------
# Each takes the family and returns (error, tolerance[, detail]); it raises Skip when it does not apply.


def check_contract(family):
    """Shapes, batch sizes and finiteness of what the required methods return."""
    problems = []
    t = example(family, 2, torch.float32)
    points = _points(2).float()
    mapped = t.transform_points(points)
    grid = t.grid(SIZE)
    inv = t.inverse()
    ident = family.identity(2)
    for what, value, expected in [
        ("batch_size", t.batch_size, 2),
        ("inverse().batch_size", inv.batch_size, 2),
        ("identity(2).batch_size", ident.batch_size, 2),
        ("transform_points shape", tuple(mapped.shape), (2, points.shape[1], 2)),
        ("grid shape", tuple(grid.shape), (2, *SIZE, 2)),
        ("inverse() type", isinstance(inv, Transform), True),
    ]:
        if value != expected:
            problems.append(f"{what}: expected {expected}, got {value}")
    for what, value in [("transform_points", mapped), ("grid", grid)]:
        if not torch.isfinite(value).all():
            problems.append(f"{what}: got NaN or infinity")
    return float(len(problems)), 0.0, "; ".join(problems)


def check_identity(family):
    """``identity()`` maps points to themselves and its grid is the pixel grid."""
    t = family.identity(2, dtype=torch.float64)
    points = _points(2)
    grid = t.grid(SIZE)
    error = max(_max(t.transform_points(points) - points), _max(grid.reshape(2, -1, 2) - _centres(2)))
    return error, GEOMETRY_TOLERANCE


def check_identity_params(family):
    """``from_params(identity_params(B))`` (and ``grid_from_params``) is the identity, in both frames: a spatial
    transformer initialised there starts from the unwarped image."""
    if not family.num_params:
        raise Skip("family has no parameter vector (num_params is None)")
    params = family.identity_params(2, dtype=torch.float64)
    if tuple(params.shape) != (2, family.num_params) or params.dtype != torch.float64:
        return (
            math.inf,
            GEOMETRY_TOLERANCE,
            (
                f"identity_params(2, dtype=float64): expected shape (2, {family.num_params}) float64, "
                f"got {tuple(params.shape)} {params.dtype}"
            ),
        )
    points, centres = _points(2), _centres(2)
    error = 0.0
    for align_corners in (False, True):
        t = family.from_params(params, SIZE, align_corners=align_corners)
        closed = family.grid_from_params(params, SIZE, align_corners=align_corners).reshape(2, -1, 2)
        error = max(
            error,
            _max(t.transform_points(points) - points),
            _max(t.grid(SIZE).reshape(2, -1, 2) - centres),
            _max(closed - centres),
        )
    return error, GEOMETRY_TOLERANCE, "both align_corners"


def check_stn_direction(family):
    """STN parameters describe the destination -> source map (what the grid reads), as documented.

    The kit cannot know what each parameter means, but the two directions differ where one of them is linear
    in the parameters and the other is not: theta acts linearly on ``affine_grid``'s grid and non-linearly on
    its inverse. Parameters that act linearly on ``transform_points`` (source -> destination) but not on the
    grid have the direction backwards. Where neither map is linear (projective, rigid) the check is skipped.
    """
    if not family.num_params:
        raise Skip("family has no parameter vector (num_params is None)")
    start = example_params(family, 1)
    generator = torch.Generator().manual_seed(7)
    step = torch.randn(start.shape, generator=generator, dtype=torch.float64) * PARAM_NOISE
    points = _points(1)

    def grid(params):
        return family.grid_from_params(params, SIZE).reshape(1, -1, 2)

    def forward(params):
        return family.from_params(params, SIZE).transform_points(points)

    bends = []
    for function in (grid, forward):
        a, b, c = (function(start + k * step) for k in range(3))
        bends.append(_max(c - 2 * b + a))
    on_grid, on_points = bends
    detail = f"second difference along a parameter step: grid {on_grid:.1e} px, transform_points {on_points:.1e} px"
    if on_grid <= LINEARITY_TOLERANCE:
        return on_grid, LINEARITY_TOLERANCE, detail + " (linear on the grid: destination -> source)"
    if on_points <= LINEARITY_TOLERANCE:
        return (
            on_grid,
            LINEARITY_TOLERANCE,
            (
                detail + ": the parameters act linearly on source -> destination points, so they describe the "
                "source -> destination map; STN parameters must describe destination -> source"
            ),
        )
    raise Skip(detail + ": neither map is linear in the parameters, so the kit cannot tell their direction")


def check_direction(family):
    """One word for direction: ``native`` (a :class:`~warpkit.Direction`) where a family stores its map one way
    round; no method takes another direction keyword and no transform carries a bool direction flag."""
    problems = []
    for name in ["__init__", *(n for n in dir(family) if not n.startswith("_"))]:
        method = inspect.getattr_static(family, name, None)
        if isinstance(method, (classmethod, staticmethod)):
            method = method.__func__
        if not callable(method) or isinstance(method, type):
            continue
        try:
            parameters = inspect.signature(method).parameters
        except (TypeError, ValueError):
            continue
        problems += [f"{family.__name__}.{name} takes {word}=" for word in parameters if word in OTHER_DIRECTION_WORDS]
    t = example(family, 1)
    natives = []
    for what, transform in (("example", t), ("example.inverse()", t.inverse())):
        native = getattr(transform, "native", None)
        if native is not None and not isinstance(native, Direction):
            problems.append(f"{what}.native: expected a warpkit.Direction, got {native!r}")
        natives.append(getattr(native, "value", "-"))
        problems += [
            f"{what}.{word} is a bool flag"
            for word in OTHER_DIRECTION_WORDS
            if isinstance(inspect.getattr_static(transform, word, None), bool)
        ]
    detail = "; ".join(problems) or f"native: {natives[0]} (inverse: {natives[1]})"
    return float(len(problems)), 0.0, detail


def check_points_vs_grid(family):
    """``transform_points(grid(size))`` gives back each destination pixel centre."""
    t = example(family, 2)
    grid = t.grid(SIZE)
    back = t.transform_points(grid.reshape(2, -1, 2))
    return _max(back - _centres(2)), GEOMETRY_TOLERANCE


def check_params_grid(family):
    """``grid_from_params`` (what ``warpkit.nn`` reads) equals ``from_params(...).grid(...)``, both frames.

    Also at an output size other than the input's, unless ``from_params`` refuses that size with
    :class:`ShapeError` (a family that keeps the image size); any other exception fails the check.
    """
    params = example_params(family, 2)
    error, sizes = 0.0, [SIZE, (SIZE[0] - 5, SIZE[1] + 3)]
    for dst_size in sizes:
        for align_corners in (False, True):
            try:
                built = family.from_params(params, SIZE, dst_size, align_corners=align_corners).grid(dst_size)
            except ShapeError:
                if dst_size == SIZE:
                    raise
                sizes = sizes[:1]  # the family keeps the image size (lens, elastic): checked at SIZE only
                break
            closed = family.grid_from_params(params, SIZE, dst_size, align_corners=align_corners)
            error = max(error, _max(closed - built))
    return error, GEOMETRY_TOLERANCE, f"output sizes {sizes}"


def check_inverse(family):
    """``inverse()`` undoes the transform, and ``inverse().inverse()`` is the transform."""
    t = example(family, 2)
    points = _points(2)
    inv = t.inverse()
    round_trip = _max(inv.transform_points(t.transform_points(points)) - points)
    twice = _max(inv.inverse().transform_points(points) - t.transform_points(points))
    return max(round_trip, twice), GEOMETRY_TOLERANCE


def check_composition(family):
    """``T.then(U)`` and ``U @ T`` map points and grids like applying T, then U."""
    t, u = example(family, 2, seed=0), example(family, 2, seed=1)
    points = _points(2)
    expected = u.transform_points(t.transform_points(points))
    composed = t.then(u)
    error = max(_max(composed.transform_points(points) - expected), _max((u @ t).transform_points(points) - expected))
    grid = composed.grid(SIZE).reshape(2, -1, 2)
    expected_grid = t.inverse().transform_points(u.inverse().transform_points(_centres(2)))
    return max(error, _max(grid - expected_grid)), GEOMETRY_TOLERANCE


def check_estimation(family):
    """``estimate`` recovers a known transform from its correspondences (measured on other points)."""
    if not family.can_estimate():
        raise Skip("family has no estimate()")
    generator = torch.Generator().manual_seed(3)
    anchors = _points(1, 8, seed=4)
    known = family.estimate(anchors, anchors + torch.randn(anchors.shape, generator=generator, dtype=torch.float64))
    src = torch.cat([anchors, _points(1, 40, seed=5)], dim=1)
    fitted = family.estimate(src, known.transform_points(src))
    held_out = _points(1, 50, seed=6)
    return _max(fitted.transform_points(held_out) - known.transform_points(held_out)), GEOMETRY_TOLERANCE


def check_gradients(family):
    """Analytic vs central-difference Jacobians (float64) of a warp w.r.t. parameters, image and points."""
    size = (4, 5)  # small: the numeric Jacobian costs two warps per input element
    image = _image(1, 1, size, torch.float64)
    points = _points(1, 2)
    function: Callable[..., torch.Tensor]
    if family.num_params:
        params = example_params(family, 1)

        def of_params(params, image, points):
            t = family.from_params(params, size)
            return torch.cat([warp(image, t, (3, 4)).flatten(), t.transform_points(points).flatten()])

        function, inputs = of_params, (params, image, points)
        names = "parameters, image, points"
    else:
        t = example(family, 1)

        def of_image_and_points(image, points):
            return torch.cat([warp(image, t, (3, 4)).flatten(), t.transform_points(points).flatten()])

        function, inputs = of_image_and_points, (image, points)
        names = "image, points (no parameter vector)"
    analytic = torch.autograd.functional.jacobian(function, inputs)
    numeric = _numeric_jacobian(function, inputs)
    error = max(_max(a.reshape(n.shape) - n) for a, n in zip(analytic, numeric))
    return error, GRADIENT_TOLERANCE, f"w.r.t. {names}"


def _numeric_jacobian(function: Callable, inputs: tuple[torch.Tensor, ...], eps: float = 1e-6):
    with torch.no_grad():
        outputs = []
        for i, x in enumerate(inputs):
            columns = []
            for j in range(x.numel()):
                step = torch.zeros_like(x).flatten()
                step[j] = eps
                step = step.reshape(x.shape)
                plus = function(*[y + step if k == i else y for k, y in enumerate(inputs)])
                minus = function(*[y - step if k == i else y for k, y in enumerate(inputs)])
                columns.append((plus - minus) / (2 * eps))
            outputs.append(torch.stack(columns, dim=-1))
        return outputs


def check_batch(family):
    """Element ``i`` of a batched transform acts like that element alone (points, grid and warp)."""
    points, image = _points(3), _image(3, 2, dtype=torch.float64)
    if family.num_params:
        params = example_params(family, 3)
        batch = family.from_params(params, SIZE)
        singles = [family.from_params(params[i : i + 1], SIZE) for i in range(3)]
    else:
        batch, singles = example(family, 3), [example(family, 1)]
    mapped, grid, warped = batch.transform_points(points), batch.grid(SIZE), warp(image, batch)
    error = 0.0
    for i, single in enumerate(singles):
        error = max(
            error,
            _max(mapped[i] - single.transform_points(points[i : i + 1])[0]),
            _max(grid[i] - single.grid(SIZE)[0]),
            _max(warped[i] - warp(image[i : i + 1], single)[0]),
        )
    return error, 1e-9


def check_dtype_device(family):
    """float32 and float64 transforms keep their dtype and device in points, grids and warps."""
    problems = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dtype in (torch.float32, torch.float64):
        t = example(family, 1, dtype)
        if t.dtype != dtype:
            problems.append(f"{dtype}: transform.dtype is {t.dtype}")
        for device in devices:
            t_dev = _to_device(family, t, dtype, device)
            results = {
                "transform_points": t_dev.transform_points(_points(1).to(dtype=dtype, device=device)),
                "grid": t_dev.grid((4, 5)),
                "inverse().grid": t_dev.inverse().grid((4, 5)),
                "warp": warp(_image(1, 1, (4, 5), dtype).to(device), t_dev),
            }
            for what, value in results.items():
                if value.dtype != dtype or value.device.type != device:
                    problems.append(f"{what}: expected {dtype} on {device}, got {value.dtype} on {value.device}")
    return float(len(problems)), 0.0, "; ".join(problems)


def _to_device(family, t, dtype, device):
    if device == "cpu":
        return t
    moved = t.to(device=device)
    if moved.device.type != device or moved.dtype != dtype:
        raise WarpkitError(f"to(device={device!r}): expected {dtype} on {device}, got {moved.dtype} on {moved.device}")
    return moved


def check_empty(family):
    """An empty batch of transforms, of points and of images gives empty results of the right shape."""
    problems = []
    cases = [
        ("identity(0).grid", lambda: family.identity(0).grid((4, 5)), (0, 4, 5, 2)),
        ("transform_points of 0 points", lambda: example(family, 2).transform_points(torch.zeros(2, 0, 2)), (2, 0, 2)),
        (
            "warp of a batch of 0 images",
            lambda: warp(torch.zeros(0, 3, 4, 5), example(family, 1, torch.float32)),
            (0, 3, 4, 5),
        ),
    ]
    for what, make, shape in cases:
        try:
            got = tuple(make().shape)
        except Exception as exc:  # noqa: BLE001 - an empty batch must not raise at all
            problems.append(f"{what}: raised {type(exc).__name__}: {exc}")
            continue
        if got != shape:
            problems.append(f"{what}: expected shape {shape}, got {got}")
    return float(len(problems)), 0.0, "; ".join(problems)


def check_compile(family):
    """``torch.compile`` of parameters -> grid (or points -> points) matches eager mode."""
    if family.num_params:
        params = example_params(family, 2, torch.float32)

        def function(x):
            return family.grid_from_params(x, (6, 7))

        argument = params
    else:
        t = example(family, 2, torch.float32)

        def function(x):
            return t.transform_points(x)

        argument = _points(2).float()
    from torch import _dynamo  # noqa: PLC0415 - only when this check runs

    _dynamo.reset()  # a fresh cache per family, so recompilation limits never carry over
    compiled = torch.compile(function, backend=COMPILE_BACKEND)
    return _max(compiled(argument) - function(argument)), 1e-5, f"backend={COMPILE_BACKEND}"


def _require_cv2() -> None:
    try:
        import cv2  # noqa: F401, PLC0415 - optional dependency
    except ImportError:
        raise Skip("opencv-python is not installed") from None


def _hwc(image: torch.Tensor):
    return image[0].permute(1, 2, 0).contiguous().numpy()


def check_cv2_matrix(family):
    """Warp vs ``cv2.warpAffine`` (last row [0, 0, 1]) or ``cv2.warpPerspective``, bilinear, zero border."""
    if not family.has_matrix:
        raise Skip("family has no matrix form (has_matrix is False)")
    _require_cv2()
    t = example(family, 1)
    image = _image()
    try:
        expected, used = warp_matrix(_hwc(image), t.matrix[0].detach().double().numpy(), SIZE, cv2_options())
    except ModeError as exc:  # OpenCV would not return on this input
        raise Skip(f"OpenCV skipped: {exc}") from None
    got = _hwc(warp(image, t))
    return _max(torch.from_numpy(got - expected)), IMAGE_TOLERANCE, used


def check_cv2_remap(family):
    """Warp vs ``cv2.remap`` on the family's own grid, bilinear, zero border."""
    _require_cv2()
    t = example(family, 1)
    image = _image()
    try:
        expected = remap(_hwc(image), t.grid(SIZE)[0].detach().double().numpy(), cv2_options())
    except ModeError as exc:  # OpenCV would not return on this input
        raise Skip(f"OpenCV skipped: {exc}") from None
    got = _hwc(warp(image, t))
    return _max(torch.from_numpy(got - expected)), IMAGE_TOLERANCE


def check_kornia(family):
    """Warp vs ``kornia.geometry.transform.warp_perspective`` for matrix families."""
    if not family.has_matrix:
        raise Skip("kornia has no counterpart for families without a matrix form")
    try:
        from kornia.geometry.transform import warp_perspective  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise Skip("kornia is not installed") from None
    t = example(family, 1)
    image = _image()
    expected = warp_perspective(
        image, t.matrix.float(), SIZE, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return _max(warp(image, t) - expected), IMAGE_TOLERANCE


#: name -> check, in the order they run. ``compile`` uses :data:`COMPILE_BACKEND`.
def check_antialias(family):
    """``warp(..., antialias=True)`` of the family (composed with a scale): exactly the plain warp where it
    magnifies 2x; at a 4x shrink at least 6 dB closer than the plain warp to a supersampled ground truth
    (8 x 8 bilinear reads per output pixel); a ``grid_jacobian`` method, if the family has one, agrees with
    central differences of its grid."""
    from .._antialias import grid_differences  # noqa: PLC0415 - keeps import warpkit.testing light
    from .._sampler import sample  # noqa: PLC0415
    from ..families.affine import Affine  # noqa: PLC0415

    t = example(family, 1)
    problems = []

    def scaled(factor: float, sub: int = 1) -> Transform:
        s = factor * sub  # cv2.resize's pixel-centre convention, then ``sub`` x ``sub`` sub-pixels each
        offset = (s - 1) / 2
        return Composed([t, Affine(torch.tensor([[s, 0, offset], [0, s, offset]], dtype=torch.float64))])

    image = _image(1, 2, (SIZE[0] * 2, SIZE[1] * 2), torch.float64)
    small = (SIZE[0] // 2, SIZE[1] // 2)
    plain = warp(image, scaled(0.25), small)
    got = warp(image, scaled(0.25), small, antialias=True)
    fine = sample(image, scaled(0.25, 8).grid((small[0] * 8, small[1] * 8)))
    truth = fine.reshape(1, 2, small[0], 8, small[1], 8).mean(dim=(3, 5))
    gain = 10 * math.log10(((plain - truth) ** 2).mean() / ((got - truth) ** 2).mean().clamp_min(1e-30))
    if not gain >= 6:
        problems.append(f"4x shrink: {gain:.1f} dB closer to the ground truth than the plain warp, expected >= 6")
    big = (SIZE[0] * 2, SIZE[1] * 2)
    if not torch.equal(warp(image, scaled(2.0), big, antialias=True), warp(image, scaled(2.0), big)):
        problems.append("2x magnification: differs from the plain warp")
    jacobian = getattr(t, "grid_jacobian", None)
    if callable(jacobian):
        expected = grid_differences(t.grid(SIZE).double())
        error = _max(jacobian(SIZE).double() - expected)
        if not error <= 1e-2 * max(1.0, _max(expected)):
            problems.append(f"grid_jacobian: differs from central differences of the grid by {error:.3g}")
    return float(len(problems)), 0.0, "; ".join(problems) or f"4x shrink: {gain:.1f} dB closer than plain"


CHECKS: dict[str, Callable] = {
    "contract": check_contract,
    "identity": check_identity,
    "identity_params": check_identity_params,
    "stn_direction": check_stn_direction,
    "direction": check_direction,
    "points_vs_grid": check_points_vs_grid,
    "params_grid": check_params_grid,
    "inverse": check_inverse,
    "composition": check_composition,
    "estimation": check_estimation,
    "gradients": check_gradients,
    "batch": check_batch,
    "dtype_device": check_dtype_device,
    "empty_batch": check_empty,
    "compile": check_compile,
    "cv2_matrix": check_cv2_matrix,
    "cv2_remap": check_cv2_remap,
    "kornia": check_kornia,
    "antialias": check_antialias,
}


def run_check(family: type[Transform], name: str) -> CheckResult:
    """Run one check; any exception the family raises is a failure, reported with its message."""
    if name not in CHECKS:
        raise WarpkitError(f"checks: expected names from {', '.join(CHECKS)}, got {name!r}")
    try:
        outcome = CHECKS[name](family)
    except Skip as skip:
        return CheckResult(name, None, detail=str(skip))
    except Exception as exc:  # noqa: BLE001 - a faulty family is reported, never propagated
        return CheckResult(name, False, math.inf, None, f"raised {type(exc).__name__}: {exc}"[:300])
    error, tolerance, *detail = outcome
    passed = bool(error <= tolerance)  # NaN is never <= anything
    return CheckResult(name, passed, float(error), float(tolerance), detail[0] if detail else "")


def check_family(family: type[Transform] | str, checks: Iterable[str] | None = None) -> Report:
    """Run the conformance kit on a family class or registered name.

    Args:
        family: a :class:`warpkit.Transform` subclass, or a name known to :func:`warpkit.get_family`.
        checks: names from :data:`CHECKS` to run (default all).

    Returns:
        A :class:`Report`; ``report.passed`` is False when any check failed. A family that cannot be
        loaded gives a report with one failed ``load`` check instead of raising.
    """
    label = family if isinstance(family, str) else getattr(family, "name", "") or repr(family)
    if isinstance(family, str):
        try:
            family = get_family(family)
        except WarpkitError as exc:
            return Report(label, [CheckResult("load", False, detail=f"{type(exc).__name__}: {exc}")])
    if not (isinstance(family, type) and issubclass(family, Transform)):
        raise WarpkitError(f"family: expected a warpkit.Transform subclass or a registered name, got {family!r}")
    names = list(CHECKS) if checks is None else list(checks)
    with torch.random.fork_rng():  # checks seed their own generators; leave the caller's state alone
        return Report(label, [run_check(family, name) for name in names])


def reports_to_json(reports: Iterable[Report]) -> str:
    return json.dumps([r.to_dict() for r in reports], indent=2, default=str)
