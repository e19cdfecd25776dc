"""``warpkit report``: the consistency table over every registered family."""

from __future__ import annotations

import torch
from conftest import real_image

import warpkit as wk
from warpkit.cli import main
from warpkit.report import consistency_report, example_transform, format_report


def test_core_families_pass_on_a_real_image():
    rows = consistency_report(real_image((48, 64)), (40, 56), names=["affine", "projective", "tps"])
    assert {r.family for r in rows} == {"affine", "projective", "tps"}
    assert len(rows) == 3 * 18
    assert all(r.passed for r in rows), format_report([r for r in rows if not r.passed])
    matrix_rows = [r for r in rows if r.family != "tps"]
    assert all(r.vs_cv2_warp is not None for r in matrix_rows)
    assert all(r.vs_kornia is not None for r in matrix_rows if r.padding != "wrap")


def test_every_registered_family_gets_rows():
    rows = consistency_report(real_image((24, 32)), (20, 28))
    assert {r.family for r in rows} == set(wk.families())


def test_example_transforms_are_reproducible_and_not_the_identity():
    a = example_transform(wk.Affine, (48, 64), (40, 56), seed=1).matrix
    assert (a - torch.eye(3, dtype=a.dtype)).abs().max() > 1e-3
    assert (a == example_transform(wk.Affine, (48, 64), (40, 56), seed=1).matrix).all()


def test_cli_exit_status_and_table(capsys):
    assert main(["report", "affine", "--size", "32", "48"]) == 0
    out = capsys.readouterr().out
    assert "affine" in out and "18 of 18 comparisons pass" in out
    assert main(["report", "no-such-family"]) == 2
