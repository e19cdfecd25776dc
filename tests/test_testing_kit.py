"""The conformance kit: it passes the built-ins, and it catches broken families."""

import json

import pytest
import torch

import warpkit as wk
from warpkit.testing import CHECKS, FamilyTests, check_family


class TestAffineKit(FamilyTests):
    family = "affine"


class TestProjectiveKit(FamilyTests):
    family = wk.Projective


class TestTpsKit(FamilyTests):
    family = "tps"


# --- deliberately broken families -----------------------------------------------------------------
class WrongInverse(wk.Affine):
    name = "wrong_inverse"

    def inverse(self):
        # transposes the linear part and negates the offset: right only for pure rotations about 0
        return type(self)(torch.cat([self.matrix[:, :2, :2].transpose(1, 2), -self.matrix[:, :2, 2:]], 2))


# No matrix form, so that warp reads grid() (matrix families may be warped from the matrix directly).
class DetachedGrid(wk.Affine):
    name = "detached_grid"
    has_matrix = False

    def grid(self, size):
        return super().grid(size).detach()


class ShiftedGrid(wk.Affine):
    name = "shifted_grid"
    has_matrix = False

    def grid(self, size):
        return super().grid(size) + 0.25


class NaNPoints(wk.Affine):
    name = "nan_points"

    def map_points(self, points):
        return super().map_points(points) * float("nan")


class WrongShape(wk.Affine):
    name = "wrong_shape"

    def map_points(self, points):
        return super().map_points(points)[:, :1]


class WrongParamsGrid(wk.Affine):
    name = "wrong_params_grid"

    @classmethod
    def grid_from_params(cls, params, src_size, dst_size=None, *, align_corners=False):
        return super().grid_from_params(params, src_size, dst_size, align_corners=align_corners) + 0.5


class RaisesEverywhere(wk.Affine):
    name = "raises"

    def map_points(self, points):
        raise RuntimeError("plugin bug")


@pytest.mark.parametrize(
    "family, failing",
    [
        (WrongInverse, {"inverse", "points_vs_grid", "composition"}),
        (DetachedGrid, {"gradients"}),
        (ShiftedGrid, {"points_vs_grid", "params_grid"}),
        (WrongParamsGrid, {"params_grid"}),
        (NaNPoints, {"contract", "identity", "inverse", "estimation"}),
        (WrongShape, {"contract"}),
        (RaisesEverywhere, {"contract", "identity", "inverse", "composition"}),
    ],
)
def test_kit_catches_broken_families(family, failing):
    report = check_family(family, sorted(failing))
    assert not report.passed
    assert {r.name for r in report.failures} == failing, report.table()
    assert family.name in report.table() and "FAIL" in report.table()


def test_wrong_inverse_error_is_measured_in_pixels():
    result = check_family(WrongInverse, ["inverse"])["inverse"]
    assert result.error > 1.0 and result.tolerance == pytest.approx(1e-6)


def test_exceptions_are_reported_not_raised():
    result = check_family(RaisesEverywhere, ["identity"])["identity"]
    assert result.passed is False and "RuntimeError: plugin bug" in result.detail


def test_skips_say_why():
    report = check_family("tps", ["cv2_matrix", "kornia"])
    assert all(r.skipped and "matrix" in r.detail for r in report.results) and report.passed


def test_unknown_family_gives_a_failed_load_check():
    report = check_family("no_such_family")
    assert not report.passed and report.results[0].name == "load" and "no_such_family" in report.results[0].detail


def test_unknown_check_name_is_refused():
    with pytest.raises(wk.WarpkitError, match="checks: expected names from"):
        check_family("affine", ["nope"])


def test_report_json_is_strict_json():
    data = json.loads(json.dumps(check_family(RaisesEverywhere, ["identity"]).to_dict(), allow_nan=False))
    assert data["passed"] is False and data["checks"][0]["error"] == "inf"


def test_mixin_has_one_test_per_check():
    assert {f"test_{name}" for name in CHECKS} == {n for n in dir(FamilyTests) if n.startswith("test_")}


def test_pytest_plugin_fixture_fails_with_the_table(tmp_path):
    # the pytest11 entry point loads warpkit's plugin in a fresh pytest run; no conftest needed
    import subprocess
    import sys

    (tmp_path / "test_plugin_user.py").write_text(
        "import warpkit as wk\n"
        "class Shifted(wk.Affine):\n"
        "    name = 'shifted'\n"
        "    def grid(self, size):\n"
        "        return super().grid(size) + 0.25\n"
        "def test_ok(warpkit_check):\n"
        "    assert warpkit_check('affine', ['identity']).passed\n"
        "def test_broken(warpkit_check):\n"
        "    warpkit_check(Shifted, ['points_vs_grid'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    assert "conformance kit failed for shifted" in run.stdout and "points_vs_grid" in run.stdout


def test_the_plugin_in_docs_plugins_md_works_as_written(tmp_path, monkeypatch):
    """Follow docs/plugins.md as a new author: its module and entry point, installed as a distribution."""
    import pathlib
    import re

    from warpkit import _registry

    doc = (pathlib.Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    module = re.search(r"`my_translation/__init__.py`:\n\n```python\n(.*?)```", doc, re.S).group(1)
    assert len(module.strip().splitlines()) < 60
    entry = re.search(r'\[project.entry-points."warpkit.families"\]\n(.*?)\n', doc).group(1)
    package = tmp_path / "my_translation"
    package.mkdir()
    (package / "__init__.py").write_text(module)
    info = tmp_path / "my_translation-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-translation\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[warpkit.families]\n" + entry.replace('"', "") + "\n")  # as pip writes it
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("WARPKIT_DISABLE_PLUGINS", raising=False)
    _registry._reset_plugins()
    try:
        report = check_family("translation")
        assert report.passed, report.table()
        assert sum(r.passed is True for r in report.results) == len(CHECKS)  # nothing skipped
    finally:
        _registry._reset_plugins()


# --- the checks added for STN-breaking families: each fails on a family broken in just that way -----------
class OffIdentityParams(wk.Affine):
    """identity_params is not the identity: a spatial transformer built on it starts off warped."""

    name = "off_identity_params"

    @classmethod
    def identity_params(cls, batch_size=1, *, dtype=torch.float32, device=None):
        return wk.Affine.identity_params(batch_size, dtype=dtype, device=device) + 0.1


class SourceToDestinationParams(wk.Affine):
    """theta read as the source -> destination map: the opposite of the documented direction."""

    name = "source_to_destination_params"

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners=False):
        documented = wk.Affine.from_params(params, src_size, dst_size, align_corners=align_corners)
        return cls(documented.inverse().matrix[:, :2])


class ForwardFlag(wk.Affine):
    """A second word for direction: its own bool flag instead of ``native``."""

    name = "forward_flag"

    def __init__(self, matrix, *, forward=True):
        super().__init__(matrix)
        self.forward = forward


class StringNative(wk.Affine):
    name = "string_native"
    native = "forward"  # not a warpkit.Direction


NEW_CHECKS = ["identity_params", "stn_direction", "direction"]


@pytest.mark.parametrize(
    "family, failing",
    [
        (OffIdentityParams, {"identity_params"}),
        (SourceToDestinationParams, {"stn_direction"}),
        (ForwardFlag, {"direction"}),
        (StringNative, {"direction"}),
    ],
)
def test_new_checks_catch_what_the_other_checks_let_through(family, failing):
    """The broken family passes every other check (it is consistent with itself); only the new one fails."""
    report = check_family(family, [c for c in CHECKS if c not in ("compile", "gradients")])
    assert {r.name for r in report.failures} == failing, report.table()


def test_off_identity_params_starts_a_spatial_transformer_off_the_identity():
    """What the identity_params check protects: the grid of identity_params, against the plain pixel grid."""
    params = OffIdentityParams.identity_params(1, dtype=torch.float64)
    grid = OffIdentityParams.grid_from_params(params, (24, 32))
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(32.0), indexing="ij")
    assert (grid[0] - torch.stack([xs, ys], -1).double()).abs().max() > 1.0
    assert check_family(OffIdentityParams, ["identity_params"])["identity_params"].error > 1.0


def test_source_to_destination_params_disagree_with_affine_grid():
    """The broken family's STN grid is not F.affine_grid's for the same theta; the documented one's is."""
    import torch.nn.functional as F

    theta = torch.tensor([[[1.1, 0.2, 0.1], [-0.1, 0.9, -0.2]]], dtype=torch.float64)
    reference = F.affine_grid(theta, (1, 1, 24, 32), align_corners=False)
    for family, close in ((wk.Affine, True), (SourceToDestinationParams, False)):
        grid = wk.pixel_to_normalized(family.grid_from_params(theta.reshape(1, 6), (24, 32)), (24, 32))
        assert bool((grid - reference).abs().max() < 1e-12) is close, family.name
    result = check_family(SourceToDestinationParams, ["stn_direction"])["stn_direction"]
    assert result.passed is False and "source -> destination" in result.detail


def test_stn_direction_is_skipped_with_its_reason_where_it_cannot_tell():
    result = check_family("projective", ["stn_direction"])["stn_direction"]
    assert result.skipped and "neither map is linear" in result.detail


def test_families_with_a_stored_direction_report_it_in_the_one_word():
    report = check_family("tps", ["direction"])
    assert report.passed and "native: inverse" in report["direction"].detail
