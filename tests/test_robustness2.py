"""Robustness, second round (issue 13): each test is one repro from the issue, checked against an independent
reference (OpenCV, scipy, float64 math) or against the documented error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import warpkit as wk

cv2 = pytest.importorskip("cv2")


def _pixel_centres(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


# --- item 2: invertibility judged by conditioning, not by a norm a translation dominates -------------


@pytest.mark.parametrize(
    "matrix",
    [
        np.array([[1.0, 0, 5000], [0, 1, 5000]]),
        np.array([[0.0, -1, 7999], [1, 0, 0]]),  # 90 degrees of an 8000-px frame
        cv2.getRotationMatrix2D((10000.0, 10000.0), 33.0, 1.0),  # about the centre of a 20000-px image
        cv2.getRotationMatrix2D((10000.0, 10000.0), 90.0, 1.0),
        np.array([[1e-3, 0, 0], [0, 1e-3, 0]]),  # a pure scale is perfectly conditioned
    ],
    ids=["translate-5000", "rot90-8000px", "rot33-20000px", "rot90-20000px", "scale-1e-3"],
)
def test_well_conditioned_matrices_with_large_entries_invert_as_opencv_does(matrix):
    grid = wk.Affine(torch.tensor(matrix)).grid((6, 7))[0].reshape(-1, 2).numpy()
    expected = cv2.transform(_pixel_centres(6, 7)[None], cv2.invertAffineTransform(matrix))[0]
    np.testing.assert_allclose(grid, expected, rtol=1e-12, atol=1e-9)


def test_warp_with_a_large_translation_is_not_refused():
    image = torch.rand(1, 1, 8, 8)
    out = wk.warp(image, wk.Affine([[1.0, 0, 5000], [0, 1, 5000]]))
    expected = cv2.warpAffine(image[0, 0].numpy(), np.array([[1.0, 0, 5000], [0, 1, 5000]]), (8, 8))
    np.testing.assert_array_equal(out[0, 0].numpy(), expected)


def test_large_homography_inverts():
    h = np.array([[0.9, 0.05, 12000.0], [-0.04, 1.1, -8000.0], [1e-6, 2e-6, 1.0]])
    grid = wk.Projective(torch.tensor(h)).grid((5, 6))[0].reshape(-1, 2).numpy()
    expected = cv2.perspectiveTransform(_pixel_centres(5, 6)[None], np.linalg.inv(h))[0]
    np.testing.assert_allclose(grid, expected, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize(
    "matrix",
    [[[1.0, 2, 3], [2, 4, 6]], [[0.0, 0, 5000], [0, 0, 5000]], [[1.0, 1e-14, 0], [1, 0, 0]]],
    ids=["dependent-rows", "zero-linear-part", "nearly-dependent"],
)
def test_singular_matrices_are_refused_whatever_their_translation(matrix):
    with pytest.raises(wk.SingularMatrixError, match="matrix: expected an invertible matrix"):
        wk.Affine(torch.tensor(matrix)).inverse()


def test_to_params_of_a_singular_matrix_is_a_warpkit_error():
    with pytest.raises(wk.SingularMatrixError, match="matrix: expected an invertible matrix"):
        wk.Affine(torch.zeros(2, 3)).to_params((8, 8))
    with pytest.raises(wk.SingularMatrixError, match="matrix: expected an invertible matrix"):
        wk.Projective(torch.ones(3, 3)).to_params((8, 8))


# --- item 10: half precision, weights ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matrices_work_in_float32_and_come_back(dtype):
    m = torch.tensor([[1.1, 0.2, 3.0], [-0.1, 0.9, 2.0]])
    affine = wk.Affine(m.to(dtype))
    inverse = affine.inverse()
    assert inverse.dtype == dtype
    reference = torch.linalg.inv(torch.cat([m.to(dtype).double(), torch.tensor([[0.0, 0, 1]], dtype=torch.float64)]))
    torch.testing.assert_close(inverse.matrix[0].double(), reference, atol=2e-2, rtol=1e-2)
    params = affine.to_params((8, 8))
    assert params.dtype == dtype
    back = wk.Affine.from_params(params, (8, 8))
    assert back.dtype == dtype
    torch.testing.assert_close(back.matrix.double(), affine.matrix.double(), atol=5e-2, rtol=2e-2)
    projective = wk.Projective.from_params(wk.Projective.identity_params(2, dtype=dtype), (8, 8))
    assert projective.dtype == dtype and projective.inverse().dtype == dtype
    out = wk.warp(torch.rand(1, 2, 8, 8, dtype=dtype), affine)
    assert out.dtype == dtype


def test_projective_estimate_with_all_zero_weights_is_refused():
    src = torch.rand(6, 2)
    with pytest.raises(wk.DegenerateInputError, match="weights: expected at least 4 positive weights"):
        wk.Projective.estimate(src, src + 1, torch.zeros(6))
    with pytest.raises(wk.DegenerateInputError, match="weights: expected at least 3 positive weights"):
        wk.Affine.estimate(src, src + 1, torch.tensor([1.0, 1, 0, 0, 0, 0]))


@pytest.mark.parametrize("batch_size", [-1, 1.5, None, True, "2"])
@pytest.mark.parametrize("name", sorted(wk.families()))
def test_identity_params_checks_its_batch_size_on_every_family(name, batch_size):
    family = wk.get_family(name)
    if family.num_params is None:
        pytest.skip("no parameter vector")
    with pytest.raises(wk.ShapeError, match="batch_size: expected an int >= 0"):
        family.identity_params(batch_size)


# --- items 6 and 7: plugin faults contained, plugins imported outside the registry lock ---------------


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    """Fake distributions in tmp_path: ``make(dist, {name: "module:Attr"}, {module: source})``."""
    import textwrap

    from warpkit import _registry

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("WARPKIT_DISABLE_PLUGINS", raising=False)

    def make(dist, entry_points, modules):
        info = tmp_path / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[warpkit.families]\n{lines}\n")
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        return tmp_path

    _registry._reset_plugins()
    yield make
    _registry._reset_plugins()


@pytest.mark.parametrize("raise_", ["import sys; sys.exit(3)", "raise KeyboardInterrupt"])
def test_plugin_that_exits_at_import_is_a_failed_record(plugin_env, raise_):
    plugin_env("exiting-dist", {"exiting": "exiting_mod:Family"}, {"exiting_mod": raise_})
    with pytest.warns(RuntimeWarning, match="exiting"):
        names = wk.families()  # must not raise SystemExit / KeyboardInterrupt into the program
    assert "exiting" not in names and "affine" in names
    with pytest.raises(
        wk.PluginLoadError, match="plugin 'exiting' .* failed to load: (SystemExit: 3|KeyboardInterrupt)"
    ):
        wk.get_family("exiting")
    report = wk.testing.check_family("exiting")
    assert not report.passed and report.results[0].name == "load"


def test_cli_families_and_check_report_an_exiting_plugin(plugin_env):
    import os
    import subprocess
    import sys

    root = plugin_env("exiting-dist", {"exiting": "exiting_mod:Family"}, {"exiting_mod": "import sys; sys.exit(3)"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    for command in (["families"], ["check", "exiting"]):
        done = subprocess.run(
            [sys.executable, "-m", "warpkit", *command], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 1, (command, done.returncode, done.stdout, done.stderr)
        assert "exiting" in done.stdout and "SystemExit" in done.stdout, done.stdout


def test_staticmethod_estimate_does_not_crash_listing(plugin_env):
    plugin_env(
        "static-dist",
        {"static": "static_mod:Static"},
        {
            "static_mod": """
        import warpkit as wk

        class Static(wk.Affine):
            name = "static"

            @staticmethod
            def estimate(src, dst, weights=None):
                return wk.Affine.estimate(src, dst, weights)
    """
        },
    )
    assert wk.get_family("static").can_estimate()
    from warpkit.cli._families import _capabilities

    assert "estimate" in _capabilities(wk.get_family("static"))


def test_wrong_shaped_points_from_a_family_name_it(plugin_env):
    plugin_env(
        "bad-dist",
        {"badshape": "bad_mod:BadShape"},
        {
            "bad_mod": """
        import warpkit as wk

        class BadShape(wk.Affine):
            name = "badshape"
            has_matrix = False  # so that warp reads its grid

            def map_points(self, points):
                return super().map_points(points).reshape(-1, 2)  # drops the batch axis

            def inverse(self):
                return type(self)(super().inverse().matrix[:, :2])
    """
        },
    )
    family = wk.get_family("badshape")
    t = family(torch.eye(2, 3).expand(2, 2, 3))
    with pytest.raises(
        wk.ShapeError, match=r"BadShape.map_points: expected points of shape \(B, 20, 2\) from family 'badshape'"
    ):
        t.grid((4, 5))
    with pytest.raises(wk.ShapeError, match="from family 'badshape'"):
        wk.warp(torch.rand(2, 1, 4, 5), t, interpolation="bicubic")
    with pytest.raises(wk.ShapeError, match="from family 'badshape'"):
        t.transform_points(torch.rand(2, 3, 2))


DEADLOCK_PROBE = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import warpkit as wk
import gate
started = threading.Thread(target=lambda: __import__("selfish_mod"), daemon=True)
started.start()
gate.started.wait(10)           # the plugin module is being imported by that thread (its import lock held)
lister = threading.Thread(target=wk.families, daemon=True)
lister.start()                  # the first wk.families(): will want the same module
time.sleep(0.5)
gate.go.set()                   # now the plugin calls wk.get_family at import
started.join(20); lister.join(20)
print("deadlock" if started.is_alive() or lister.is_alive() else "ok", sorted(wk.families()))
"""


def test_plugin_calling_get_family_at_import_while_another_thread_lists_does_not_deadlock(plugin_env, tmp_path):
    import subprocess
    import sys

    root = plugin_env(
        "selfish-dist",
        {"selfish": "selfish_mod:Selfish"},
        {
            "gate": "import threading\nstarted = threading.Event()\ngo = threading.Event()\n",
            "selfish_mod": """
            import gate
            import warpkit as wk
            gate.started.set()
            gate.go.wait(10)
            Affine = wk.get_family("affine")

            class Selfish(Affine):
                name = "selfish"
        """,
        },
    )
    probe = tmp_path / "probe.py"
    probe.write_text(DEADLOCK_PROBE)
    done = subprocess.run([sys.executable, str(probe), str(root)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok") and "selfish" in done.stdout, done.stdout + done.stderr


# --- item 4: every grid-allocating path checks the size first ------------------------------------------


HUGE = (100_000, 100_000)


@pytest.mark.parametrize("name", ["affine", "projective", "tps"])
def test_grid_from_params_checks_the_size_before_allocating(name):
    family = wk.get_family(name)
    with pytest.raises(wk.SizeLimitError, match="dst_size: expected an output of at most"):
        family.grid_from_params(family.identity_params(1), (8, 8), HUGE)


def test_nn_modules_check_the_size_before_allocating():
    with pytest.raises(wk.SizeLimitError, match="output_size: expected an output of at most"):
        wk.nn.Warp("affine", HUGE)(torch.rand(1, 1, 8, 8), wk.Affine.identity_params(1))
    with pytest.raises(wk.SizeLimitError, match="output_size: expected an output of at most"):
        wk.nn.Warp("tps", HUGE)(torch.rand(1, 1, 8, 8), wk.ThinPlateSpline.identity_params(1))
    with pytest.raises(wk.SizeLimitError, match="input_size: expected an output of at most"):
        wk.nn.SpatialTransformer(1, HUGE)
    with pytest.raises(wk.SizeLimitError, match="output_size: expected an output of at most"):
        wk.nn.SpatialTransformer(1, (28, 28), output_size=HUGE)


def test_tps_grid_checks_the_size_before_allocating():
    tps = wk.ThinPlateSpline.fit(torch.rand(5, 2) * 10, torch.rand(5, 2) * 10)
    with pytest.raises(wk.SizeLimitError, match="size: expected an output of at most"):
        tps.grid(HUGE)


# --- item 5: OpenCV comparisons never hang -------------------------------------------------------------

GUARD_PROBE = r"""
import itertools, numpy as np, torch, warpkit as wk
from warpkit import _opencv, report
image = np.random.default_rng(0).random((24, 32, 3)).astype(np.float32)
outcomes = []
for interpolation, padding, value in itertools.product(["nearest", "bilinear"], ["reflect", "reflect101"],
                                                       [float("nan"), float("inf"), -float("inf"), 1e30, 1e12]):
    options = _opencv.cv2_options(interpolation, padding)
    grid = np.random.default_rng(1).random((24, 32, 2)) * 20
    grid[5:9, :, 0] = value
    try:
        _opencv.remap(image, grid, options)
        outcomes.append("ran")
    except wk.ModeError as exc:
        outcomes.append("refused" if str(exc).startswith("grid: OpenCV") else "wrong message")
    horizon = np.array([[1.0, 0, 0], [0, 1, 0], [0.05, 0, 1]])  # its horizon crosses the output
    try:
        _opencv.warp_matrix(image, horizon, (24, 32), options)
        outcomes.append("ran")
    except wk.ModeError as exc:
        outcomes.append("refused" if str(exc).startswith("matrix: OpenCV") else "wrong message")
tensor = torch.from_numpy(image.transpose(2, 0, 1).copy()).unsqueeze(0)
grid = np.full((24, 32, 2), np.nan, np.float32)
row = report._compare("affine", tensor, image, wk.Affine.identity(), grid, None, (24, 32),
                      wk.Interpolation.BILINEAR, wk.Padding.REFLECT, None)
outcomes.append("report-skip" if row.passed and row.error.startswith("skipped: grid: OpenCV") else repr(row))
print(" ".join(sorted(set(outcomes))))
"""


def test_opencv_reference_refuses_inputs_it_would_hang_on_within_a_timeout(tmp_path):
    """Each guarded case (nearest/bilinear x reflect/reflect101 x NaN, inf, 1e30, 1e12; a projective horizon) in a
    subprocess: without the guard OpenCV 5 spends minutes to forever there, so the timeout fails the test."""
    import subprocess
    import sys

    script = tmp_path / "guard.py"
    script.write_text(GUARD_PROBE)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "report-skip"], done.stdout


def test_opencv_reference_still_runs_on_ordinary_far_points():
    from warpkit import _opencv

    image = np.random.default_rng(2).random((24, 32)).astype(np.float32)
    grid = np.random.default_rng(3).random((24, 32, 2)) * 2000 - 1000  # up to 30 image sizes out
    options = _opencv.cv2_options("bilinear", "reflect101")
    ours = wk.sample(torch.from_numpy(image)[None], torch.from_numpy(grid).float(), padding="reflect101")[0].numpy()
    np.testing.assert_allclose(_opencv.remap(image, grid, options), ours, atol=1e-4)


def test_kit_skips_the_opencv_check_where_opencv_would_hang(monkeypatch):
    from warpkit.testing import _kit

    monkeypatch.setattr(_kit, "cv2_options", lambda: __import__("warpkit")._opencv.cv2_options("bilinear", "reflect"))
    monkeypatch.setattr(
        wk.Affine, "grid", lambda self, size: torch.full((1, *size, 2), float("nan"), dtype=torch.float64)
    )
    result = _kit.run_check(wk.Affine, "cv2_remap")
    assert result.skipped and "OpenCV skipped: grid: OpenCV's bilinear with reflect" in result.detail


# --- item 10: devices ------------------------------------------------------------------------------------


def test_composition_across_devices_is_a_device_error():
    cpu, meta = wk.Affine.identity(), wk.Affine(torch.eye(2, 3, device="meta"))
    with pytest.raises(wk.DeviceError, match="other: expected device cpu"):
        cpu.then(meta)
    with pytest.raises(wk.DeviceError, match="other: expected device meta"):
        meta.then(cpu)
    with pytest.raises(wk.DeviceError, match="other: expected device cpu"):
        meta @ cpu  # cpu first, then meta
    tps = wk.ThinPlateSpline.fit(torch.rand(5, 2) * 9, torch.rand(5, 2) * 9)
    with pytest.raises(wk.DeviceError):
        tps.then(meta)


@pytest.mark.parametrize("name", ["affine", "projective", "tps"])
def test_estimate_on_meta_is_a_device_error(name):
    family = wk.get_family(name)
    src = torch.rand(6, 2, device="meta")
    with pytest.raises(wk.DeviceError, match="src: expected a device that holds values"):
        family.estimate(src, src)


@pytest.mark.parametrize("name, count", [("similarity", 4), ("attention", 3)])
def test_plugin_from_params_with_zero_parameters_is_a_singular_matrix_error(name, count):
    if name not in wk.families():
        pytest.skip(f"plugin {name} not installed")
    family = wk.get_family(name)
    with pytest.raises(wk.SingularMatrixError, match="params: expected an invertible matrix"):
        family.from_params(torch.zeros(1, count), (8, 8))
    half = family.from_params(family.identity_params(1, dtype=torch.float16), (8, 8))  # half: float32 inside
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.grid((8, 8)).float(), wk.Affine.identity().grid((8, 8)), atol=1e-2, rtol=0)
