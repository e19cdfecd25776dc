"""Property-based tests (hypothesis) over the public API.

Profiles: the default ``warpkit-ci`` keeps the module within a few seconds of CPU; ``HYPOTHESIS_PROFILE=long``
runs many more examples for deliberate runs (``HYPOTHESIS_PROFILE=long pytest tests/test_properties.py``).
The profile is applied per test, so other modules' hypothesis settings are left alone.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import warpkit as wk
from warpkit._dispatch import installed_backends
from warpkit._modes import Interpolation, Padding


def _floats(low, high):
    # No subnormals: torch.compile's inductor loads code built with -ffast-math, which turns on
    # flush-to-zero for the whole process, and hypothesis then refuses to draw subnormal floats.
    return st.floats(low, high, allow_subnormal=False)


settings.register_profile(
    "warpkit-ci", max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile("long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "warpkit-ci")

interpolations = st.sampled_from(list(Interpolation))
paddings = st.sampled_from(list(Padding))
sizes = st.integers(0, 7)  # 0 (empty) and 1x1 included


@st.composite
def images(draw, min_side=0):
    batch = draw(st.integers(0, 2))
    channels = draw(st.integers(1, 3))
    height, width = draw(st.integers(min_side, 7)), draw(st.integers(min_side, 7))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _matrix(draw, extreme: bool) -> np.ndarray:
    """A well-conditioned or an extreme (huge/tiny scale, far shift, strong perspective) 3x3 matrix."""
    if extreme:
        scale = draw(st.sampled_from([1e-6, 1e-3, 1e3, 1e6]))
        shift = draw(st.sampled_from([0.0, 1e4, -1e7]))
    else:
        scale = draw(_floats(0.5, 2.0))
        shift = draw(_floats(-5, 5))
    angle = draw(_floats(-np.pi, np.pi))
    shear = draw(_floats(-0.3, 0.3))
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ [[1, shear], [0, 1]]
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = [shift, -shift / 2]
    if draw(st.booleans()):
        limit = 0.5 if extreme else 0.01
        matrix[2, :2] = [draw(_floats(-limit, limit)), draw(_floats(-limit, limit))]
    return matrix


@st.composite
def transforms(draw, extreme_allowed=True):
    kind = draw(st.sampled_from(["affine", "projective", "tps"]))
    extreme = extreme_allowed and draw(st.booleans())
    if kind == "tps":
        src = np.array([[0, 0], [6, 0], [0, 6], [6, 6], [3, 3]], dtype=np.float64)
        offsets = draw(st.lists(_floats(-0.8, 0.8), min_size=10, max_size=10))
        return wk.ThinPlateSpline.fit(torch.from_numpy(src), torch.from_numpy(src + np.reshape(offsets, (5, 2))))
    matrix = torch.from_numpy(_matrix(draw, extreme))
    return wk.Affine(matrix[:2]) if kind == "affine" and matrix[2, :2].abs().sum() == 0 else wk.Projective(matrix)


@PROFILE
@given(
    image=images(),
    transform=transforms(),
    out_h=sizes,
    out_w=sizes,
    interpolation=interpolations,
    padding=paddings,
    fill=_floats(-2, 2),
)
def test_warp_shape_dtype_and_finite(image, transform, out_h, out_w, interpolation, padding, fill):
    """Finite inputs give a finite output of the right shape and dtype, even for extreme transforms."""
    try:
        out = wk.warp(image, transform, (out_h, out_w), interpolation=interpolation, padding=padding, fill=fill)
    except wk.SingularMatrixError:
        return  # a numerically singular extreme matrix is refused: a defined outcome, never a NaN image
    assert out.shape == (image.shape[0], image.shape[1], out_h, out_w)
    assert out.dtype == image.dtype
    assert torch.isfinite(out).all()
    if interpolation is not Interpolation.BICUBIC and out.numel():
        # nearest and bilinear are convex combinations of pixels and the fill value
        values = torch.cat(
            [image.flatten(), torch.tensor([fill if padding is Padding.CONSTANT else 0.0], dtype=image.dtype)]
        )
        slack = 1e-5 if image.dtype == torch.float32 else 1e-12
        assert out.min() >= values.min() - slack and out.max() <= values.max() + slack


@PROFILE
@given(image=images(min_side=1), interpolation=interpolations, padding=paddings)
def test_identity_warp_is_exact(image, interpolation, padding):
    for family in (wk.Affine, wk.Projective, wk.ThinPlateSpline):
        out = wk.warp(image, family.identity(dtype=image.dtype), interpolation=interpolation, padding=padding)
        torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


def _border_index(i: int, n: int, padding: Padding) -> int | None:
    """``cv2.borderInterpolate`` written out from its documentation; None means "read the fill"."""
    if 0 <= i < n:
        return i
    if padding in (Padding.ZEROS, Padding.CONSTANT):
        return None
    if padding is Padding.REPLICATE:
        return min(max(i, 0), n - 1)
    if padding is Padding.WRAP:
        return i % n
    if padding is Padding.REFLECT101 and n == 1:
        return 0
    period = 2 * n if padding is Padding.REFLECT else 2 * n - 2
    m = i % period
    return m if m < n else (period - 1 - m if padding is Padding.REFLECT else period - m)


def _cubic(t: float) -> list[float]:
    a = -0.75

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(1 + t), near(t), near(1 - t), far(2 - t)]


def _brute_force(image: np.ndarray, x: float, y: float, interpolation, padding, fill) -> np.ndarray:
    """One float64 sample of ``(H, W, C)`` ``image`` at ``(x, y)``, tap by tap."""
    height, width, _ = image.shape
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    tx, ty = x - x0, y - y0
    if interpolation is Interpolation.BILINEAR:
        taps_x, taps_y = [(x0, 1 - tx), (x0 + 1, tx)], [(y0, 1 - ty), (y0 + 1, ty)]
    else:
        taps_x = list(zip(range(x0 - 1, x0 + 3), _cubic(tx)))
        taps_y = list(zip(range(y0 - 1, y0 + 3), _cubic(ty)))
    total = np.zeros(image.shape[2])
    for row, wy in taps_y:
        for col, wx in taps_x:
            r, c = _border_index(row, height, padding), _border_index(col, width, padding)
            total += wy * wx * (image[r, c] if r is not None and c is not None else np.asarray(fill))
    return total


@PROFILE
@given(
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    out_h=st.integers(1, 5),
    out_w=st.integers(1, 5),
    channels=st.integers(1, 4),
    interpolation=st.sampled_from([Interpolation.BILINEAR, Interpolation.BICUBIC]),
    padding=paddings,
    seed=st.integers(0, 2**31 - 1),
)
def test_sample_agrees_with_brute_force(height, width, out_h, out_w, channels, interpolation, padding, seed):
    """An independent float64 reference, tap by tap, with OpenCV's border rule."""
    rng = np.random.default_rng(seed)
    image = rng.random((height, width, channels))
    grid = rng.uniform(-3 * width - 2, 3 * width + 2, size=(out_h, out_w, 2))
    fill = tuple(rng.uniform(-1, 1, channels).tolist()) if padding is Padding.CONSTANT else (0.0,) * channels
    out = wk.sample(
        torch.from_numpy(image).permute(2, 0, 1),
        torch.from_numpy(grid),
        interpolation=interpolation,
        padding=padding,
        fill=fill,
    )
    expected = [
        [_brute_force(image, *grid[i, j], interpolation, padding, fill) for j in range(out_w)] for i in range(out_h)
    ]
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), np.array(expected), atol=1e-10)


@pytest.mark.parametrize("backend", [b for b in installed_backends() if b != "reference"])
@PROFILE
@given(
    image=images(min_side=1),
    interpolation=interpolations,
    padding=paddings,
    seed=st.integers(0, 2**31 - 1),
    huge=st.booleans(),
)
def test_backends_agree(backend, image, interpolation, padding, seed, huge):
    """Every backend gives the reference sampler's result, far-outside points included."""
    assume(image.shape[0] > 0)
    generator = torch.Generator().manual_seed(seed)
    span = 1e6 if huge else 10.0
    grid = (torch.rand(image.shape[0], 3, 4, 2, generator=generator, dtype=image.dtype) - 0.3) * span
    results = {}
    for name in ("reference", backend):
        with wk.backend(name):
            results[name] = wk.sample(image, grid, interpolation=interpolation, padding=padding, fill=0.5)
    reference, fast = results["reference"], results[backend]
    tolerance = 1e-5 if image.dtype == torch.float32 else 1e-10
    if interpolation is Interpolation.NEAREST:
        ties = ((grid - grid.floor()) - 0.5).abs().min() < 1e-4
        assume(not ties)  # an exact .5 may round either way in float32
    torch.testing.assert_close(fast, reference, atol=tolerance, rtol=0)


@PROFILE
@given(transform=transforms(extreme_allowed=False), seed=st.integers(0, 2**31 - 1))
def test_inverse_round_trip(transform, seed):
    points = torch.rand(1, 12, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 6
    back = transform.inverse().transform_points(transform.transform_points(points))
    torch.testing.assert_close(back.double(), points.expand_as(back), atol=1e-6, rtol=0)
    if transform.has_matrix:
        composed = transform.then(transform.inverse())
        torch.testing.assert_close(
            composed.matrix / composed.matrix[:, 2:, 2:], torch.eye(3, dtype=torch.float64)[None], atol=1e-9, rtol=0
        )


@PROFILE
@given(family=st.sampled_from([wk.Affine, wk.Projective]), data=st.data())
def test_estimate_recovers_matrix(family, data):
    matrix = _matrix(data.draw, extreme=False)
    if family is wk.Affine:
        matrix[2] = [0, 0, 1]
    src = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [4, 7], [8, 3]], dtype=np.float64)
    dst = cv2.perspectiveTransform(src[None], matrix)[0]
    estimate = family.estimate(torch.from_numpy(src), torch.from_numpy(dst))
    np.testing.assert_allclose(estimate.matrix[0].numpy(), matrix / matrix[2, 2], atol=1e-7)


@PROFILE
@given(
    family=st.sampled_from([wk.Affine, wk.Projective]),
    data=st.data(),
    src_size=st.tuples(st.integers(2, 9), st.integers(2, 9)),
    dst_size=st.tuples(st.integers(2, 9), st.integers(2, 9)),
    align_corners=st.booleans(),
)
def test_params_round_trip(family, data, src_size, dst_size, align_corners):
    matrix = _matrix(data.draw, extreme=False)
    if family is wk.Affine:
        matrix[2] = [0, 0, 1]
    transform = family(torch.from_numpy(matrix if family is wk.Projective else matrix[:2]))
    params = transform.to_params(src_size, dst_size, align_corners=align_corners)
    assert params.shape == (1, family.num_params)
    back = family.from_params(params, src_size, dst_size, align_corners=align_corners)
    result = back.matrix[0].numpy()
    np.testing.assert_allclose(result / result[2, 2], matrix / matrix[2, 2], atol=1e-8)  # homographies: up to scale


@PROFILE
@given(
    image=images(),
    grid_h=sizes,
    grid_w=sizes,
    interpolation=interpolations,
    padding=paddings,
    bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
)
def test_sample_shapes_with_nonfinite_grid(image, grid_h, grid_w, interpolation, padding, bad):
    """Any shape (empty ones too) and a fully non-finite grid: the padding value everywhere, right shape."""
    grid = torch.full((1, grid_h, grid_w, 2), bad, dtype=image.dtype)
    out = wk.sample(image, grid, interpolation=interpolation, padding=padding, fill=0.75)
    assert out.shape == (image.shape[0], image.shape[1], grid_h, grid_w) and out.dtype == image.dtype
    assert (out == (0.75 if padding is Padding.CONSTANT else 0.0)).all()


# --- the hostile sweep: every family's constructors and methods, only WarpkitErrors (issue 13) -----------

_NAN, _INF = float("nan"), float("inf")


def _hostile_tensors(shape):
    """Tensors of roughly ``shape`` that a careless or hostile caller might pass."""
    good = torch.rand(shape, dtype=torch.float64)
    return [
        good.half(),
        good.bfloat16(),
        good.float(),
        torch.full(shape, _NAN),
        torch.full(shape, _INF),
        torch.full(shape, 1e30),
        torch.full(shape, 1e200, dtype=torch.float64),
        torch.zeros(shape),
        -good,
        good.long(),
        good.bool(),
        good.to(torch.complex64),
        good.to("meta"),
        torch.rand(*shape[:-1], shape[-1] + 1),
        torch.rand(0, *shape[1:]),
        torch.rand(3, *shape),
        torch.rand(()),
        good.tolist(),
        "abc",
        None,
        b"44",
        [["1", "2"]],
        7,
        [[True, False]],
    ]


_HOSTILE_SIZES = [
    (4, 5),
    (0, 5),
    (1, 1),
    (-1, 4),
    (4.0, 5),
    b"44",
    "44",
    None,
    (10**6, 10**6),
    (2**40, 1),
    4,
    (4, 5, 6),
    [4, 5],
    (True, 5),
    torch.tensor([4, 5]),
]
_HOSTILE_BATCH = [1, 0, -1, 1.5, None, True, "2", 10**12]
_HOSTILE_SCALARS = [0.0, -1.0, _NAN, _INF, 1e300, True, "1", None, [1.0], torch.tensor(0.5)]


def _family_calls(family):
    """``(what, call)`` pairs: each public entry point of ``family`` with one hostile argument at a time."""
    from warpkit.testing import example

    calls = []
    k = 2 if family.num_params is None else family.num_params
    t = example(family, 1, torch.float32)
    for batch in _HOSTILE_BATCH:
        calls.append((f"identity({batch!r})", lambda b=batch: family.identity(b)))
        if family.num_params:
            calls.append((f"identity_params({batch!r})", lambda b=batch: family.identity_params(b)))
    for dtype in (torch.float16, torch.bfloat16, torch.int64, "float32", None):
        calls.append((f"identity(dtype={dtype})", lambda d=dtype: family.identity(1, dtype=d)))
    if family.num_params:
        for params in _hostile_tensors((1, k)):
            for size in [(8, 9), (1, 1)]:
                calls.append(
                    (
                        f"from_params({params!r:.40}, {size})",
                        lambda p=params, s=size: family.from_params(p, s).grid((3, 4)),
                    )
                )
                calls.append(
                    (
                        f"grid_from_params({params!r:.40}, {size})",
                        lambda p=params, s=size: family.grid_from_params(p, s, (3, 4), align_corners=True),
                    )
                )
        for size in _HOSTILE_SIZES:
            calls.append(
                (f"from_params(size={size!r})", lambda s=size: family.from_params(family.identity_params(1), s))
            )
            calls.append(
                (
                    f"grid_from_params(dst_size={size!r})",
                    lambda s=size: family.grid_from_params(family.identity_params(1), (8, 9), s),
                )
            )
            calls.append((f"to_params({size!r})", lambda s=size: t.to_params(s)))
        for align in (None, "yes", 2):
            calls.append(
                (
                    f"from_params(align_corners={align!r})",
                    lambda a=align: family.from_params(family.identity_params(1), (8, 9), align_corners=a),
                )
            )
    for points in _hostile_tensors((5, 2)):
        calls.append((f"transform_points({points!r:.40})", lambda p=points: t.transform_points(p)))
        calls.append((f"inverse().transform_points({points!r:.40})", lambda p=points: t.inverse().transform_points(p)))
        if family.can_estimate():
            calls.append((f"estimate({points!r:.40}, good)", lambda p=points: family.estimate(p, torch.rand(5, 2) * 9)))
            calls.append((f"estimate(good, {points!r:.40})", lambda p=points: family.estimate(torch.rand(5, 2) * 9, p)))
    if family.can_estimate():
        for weights in _hostile_tensors((5,)):
            calls.append(
                (
                    f"estimate(weights={weights!r:.40})",
                    lambda w=weights: family.estimate(torch.rand(5, 2) * 9, torch.rand(5, 2) * 9, w),
                )
            )
    if hasattr(family, "fit"):
        for value in _HOSTILE_SCALARS:
            calls.append(
                (
                    f"fit(regularization={value!r})",
                    lambda v=value: family.fit(torch.rand(5, 2) * 9, torch.rand(5, 2) * 9, v),
                )
            )
    for size in _HOSTILE_SIZES:
        calls.append((f"grid({size!r})", lambda s=size: t.grid(s)))
        calls.append((f"warp(size={size!r})", lambda s=size: wk.warp(torch.rand(1, 2, 6, 7), t, s)))
    for other in [
        t,
        t.inverse(),
        wk.Affine.identity(3),
        wk.Affine.identity(1).to("meta") if hasattr(wk.Affine, "to") else wk.Affine(torch.eye(2, 3, device="meta")),
        3,
        None,
        "affine",
    ]:
        calls.append((f"then({other!r:.40})", lambda o=other: t.then(o).grid((3, 4))))
    for image in _hostile_tensors((1, 2, 6, 7)):
        calls.append((f"warp({image!r:.40})", lambda i=image: wk.warp(i, t, (3, 4))))
    for fill in [f for f in _HOSTILE_SCALARS if f != 1e300] + [
        (1.0, 2.0, 3.0),
        torch.rand(2, device="meta"),
        torch.rand(1, 2, 1, 1),
    ]:
        calls.append(
            (
                f"warp(fill={fill!r:.40})",
                lambda f=fill: wk.warp(torch.rand(1, 2, 6, 7), t, (3, 4), padding="constant", fill=f),
            )
        )
    for mode in ["lanczos", None, 3, "BILINEAR"]:
        calls.append(
            (f"warp(interpolation={mode!r})", lambda m=mode: wk.warp(torch.rand(1, 2, 6, 7), t, interpolation=m))
        )
        calls.append((f"warp(padding={mode!r})", lambda m=mode: wk.warp(torch.rand(1, 2, 6, 7), t, padding=m)))
    return calls


@pytest.mark.parametrize("name", sorted(wk.families()))
def test_hostile_arguments_raise_only_warpkit_errors(name):
    """Every public entry point of every registered family, one hostile argument at a time (NaN, inf, 1e30,
    1e200, half precision, integer/bool/complex/meta tensors, wrong shapes, strings, bytes, huge sizes...):
    each call returns or raises a WarpkitError; any other exception is a bug."""
    import warnings

    family = wk.get_family(name)
    escaped = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for what, call in _family_calls(family):
            try:
                call()
            except wk.WarpkitError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the sweep
                escaped.append(f"{what}: {type(exc).__name__}: {str(exc)[:120]}")
    assert not escaped, f"{len(escaped)} raw exception(s):\n" + "\n".join(escaped)


def test_huge_fill_raises_only_a_warpkit_error():
    try:
        wk.warp(torch.rand(1, 2, 6, 7), wk.Affine.identity(), (3, 4), padding="constant", fill=1e300)
    except wk.WarpkitError:
        pass
