"""``warpkit warp``: real image files in and out, checked against OpenCV; one-line errors, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from warpkit.cli import main

MATRIX = np.array([[0.9, 0.1, 3.0], [-0.1, 0.95, 2.0]])
HOMOGRAPHY = np.array([[1.0, 0.02, 1.0], [0.01, 1.0, -1.0], [1e-4, 2e-4, 1.0]])


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {
        "gray8.png": (rng.random((24, 30)) * 255).astype(np.uint8),
        "colour16.tif": (rng.random((24, 30, 3)) * 65535).astype(np.uint16),
        "colour8.jpg": (rng.random((24, 30, 3)) * 255).astype(np.uint8),
        "rgba8.png": (rng.random((24, 30, 4)) * 255).astype(np.uint8),
    }
    for name, array in paths.items():
        assert cv2.imwrite(str(tmp_path / name), array)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path


def _read(path):
    return cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("name", ["gray8.png", "colour16.tif", "colour8.jpg", "rgba8.png"])
@pytest.mark.parametrize(
    "interpolation, flag",
    [("nearest", cv2.INTER_NEAREST), ("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC)],
)
def test_affine_matches_cv2_warpaffine(files, name, interpolation, flag, capsys):
    source = _read(files / name)
    output = files / ("out" + os.path.splitext(name)[1].replace(".jpg", ".png"))
    matrix = ",".join(str(v) for v in MATRIX.ravel())
    assert (
        main(
            [
                "warp",
                str(files / name),
                str(output),
                "--matrix",
                matrix,
                "--interpolation",
                interpolation,
                "--padding",
                "reflect",
                "--size",
                "20x33",
            ]
        )
        == 0
    )
    result = _read(output)
    expected = cv2.warpAffine(source, MATRIX, (33, 20), flags=flag, borderMode=cv2.BORDER_REFLECT)
    assert result.dtype == source.dtype and result.shape == expected.shape
    # OpenCV rounds its own float result; ours is within one level of it (ties, float32 coordinates)
    assert np.abs(result.astype(np.int64) - expected.astype(np.int64)).max() <= 1
    assert "wrote" in capsys.readouterr().out


def test_projective_json_and_compare_opencv(files, capsys):
    spec = files / "h.json"
    spec.write_text(json.dumps({"family": "projective", "matrix": HOMOGRAPHY.tolist()}))
    assert (
        main(
            [
                "warp",
                str(files / "colour16.tif"),
                str(files / "o.tif"),
                "--transform",
                str(spec),
                "--padding",
                "constant",
                "--fill",
                "1000,2000,3000",
                "--compare-opencv",
            ]
        )
        == 0
    )
    result = _read(files / "o.tif")
    # --fill is R,G,B as the image is seen; OpenCV's borderValue is in the file's B,G,R order
    expected = cv2.warpPerspective(
        _read(files / "colour16.tif"),
        HOMOGRAPHY,
        (30, 24),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(3000, 2000, 1000, 0),
    )
    assert np.abs(result.astype(np.int64) - expected.astype(np.int64)).max() <= 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "max |warpkit - OpenCV|" in line)
    assert "cv2.warpPerspective" in line
    assert float(line.split("= ")[1].split()[0]) < 65535 * 1e-5  # float32 results within 1e-5 of full scale


def test_tps_control_points_compare_with_remap(files, capsys):
    spec = {
        "family": "tps",
        "src": [[0, 0], [29, 0], [0, 23], [29, 23], [15, 12]],
        "dst": [[0, 0], [29, 0], [0, 23], [29, 23], [17, 13]],
    }
    (files / "t.json").write_text(json.dumps(spec))
    assert (
        main(
            [
                "warp",
                str(files / "gray8.png"),
                str(files / "t.png"),
                "--transform",
                str(files / "t.json"),
                "--compare-opencv",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "max |warpkit - OpenCV|" in line)
    assert "cv2.remap" in line and float(line.split("= ")[1].split()[0]) < 255 * 1e-5
    # the control point moved: output pixel (17, 13) shows source pixel (15, 12)
    assert _read(files / "t.png")[13, 17] == _read(files / "gray8.png")[12, 15]


def test_compare_opencv_skips_what_opencv_cannot_do(tmp_path, capsys):
    """OpenCV 5.0 never returns from bicubic + reflect101 on a one-pixel-high image: warp it, skip the comparison."""
    row = (np.arange(7, dtype=np.uint8) * 30)[None, :]
    assert cv2.imwrite(str(tmp_path / "row.png"), row)
    assert (
        main(
            [
                "warp",
                str(tmp_path / "row.png"),
                str(tmp_path / "out.png"),
                "--matrix",
                "1,0,0.5,0,1,0",
                "--interpolation",
                "bicubic",
                "--padding",
                "reflect101",
                "--compare-opencv",
            ]
        )
        == 0
    )
    assert "compare-opencv: skipped: padding: OpenCV never returns" in capsys.readouterr().out
    assert _read(tmp_path / "out.png").shape == (1, 7)


def test_params_and_src_dst_on_the_command_line(files):
    # identity theta for affine_grid is the identity warp
    assert (
        main(
            [
                "warp",
                str(files / "gray8.png"),
                str(files / "p.png"),
                "--family",
                "affine",
                "--params",
                "[1, 0, 0, 0, 1, 0]",
            ]
        )
        == 0
    )
    assert np.array_equal(_read(files / "p.png"), _read(files / "gray8.png"))
    # a pure shift by (2, 1) estimated from four correspondences
    assert (
        main(
            [
                "warp",
                str(files / "gray8.png"),
                str(files / "s.png"),
                "--family",
                "affine",
                "--src",
                "0,0;10,0;0,10;10,10",
                "--dst",
                "2,1;12,1;2,11;12,11",
            ]
        )
        == 0
    )
    assert np.array_equal(_read(files / "s.png")[1:, 2:], _read(files / "gray8.png")[:-1, :-2])


def _error(capsys, argv, fragment):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warpkit warp: error: "), captured.err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    "input_name, fragment",
    [
        ("missing.png", "input: expected an existing image file"),
        ("corrupt.png", "input: expected an image file OpenCV can decode"),
        ("empty.png", "input: expected an image file OpenCV can decode"),
        (".", "input: expected an image file, got the directory"),
    ],
)
def test_bad_input_files(files, capsys, input_name, fragment):
    _error(capsys, ["warp", str(files / input_name), str(files / "o.png"), "--matrix", "1,0,0,0,1,0"], fragment)
    assert not (files / "o.png").exists()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--matrix", "1,0,0"], "--matrix: expected 6 (affine) or 9 (projective) numbers, got 3"),
        (["--matrix", "1,0,x,0,1,0"], "--matrix: expected numbers"),
        (["--matrix", "0,0,0,0,0,0"], "matrix: expected an invertible matrix"),
        (["--matrix", "nan,0,0,0,1,0"], "--matrix: expected finite numbers"),
        ([], "transform: expected exactly one of"),
        (["--matrix", "1,0,0,0,1,0", "--params", "[1]"], "transform: expected exactly one of"),
        (["--matrix", "1,0,0,0,1,0", "--size", "10"], "--size: expected HxW"),
        (["--matrix", "1,0,0,0,1,0", "--size", "100000x100000"], "size: expected an output of at most"),
        (["--matrix", "1,0,0,0,1,0", "--interpolation", "lanczos"], "--interpolation: expected one of"),
        (
            ["--matrix", "1,0,0,0,1,0", "--padding", "constant", "--fill", "1,2"],
            "--fill: expected 1 number or 1 (one per channel",
        ),
        (["--family", "nope", "--params", "[1]"], "name: expected one of"),
        (["--family", "affine", "--params", "[1, 2"], "--params: expected a JSON list"),
        (["--family", "affine", "--params", "[1, 2]"], "params: expected shape (B, 6), got (1, 2)"),
        (["--src", "0,0;1,1;2,2", "--dst", "0,0;1,1;2,2"], "src: expected points spread in 2D"),
        (["--dst", "0,0"], "--src: expected control points to go with --dst"),
        (["--transform", "no-such.json"], "--transform: expected an existing JSON file"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_parameters(files, capsys, extra, fragment):
    argv = ["warp", str(files / "gray8.png"), str(files / "o.png"), *extra]
    _error(capsys, argv, fragment)  # argparse's own errors too: one line and status 2
    assert not (files / "o.png").exists()


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("{not json", "--transform: expected JSON"),
        ('{"matrix": [[1, 0, 0], [0, 1, 0]], "colour": 1}', "transform: expected keys among"),
        ('{"family": "tps", "matrix": [[1, 0, 0], [0, 1, 0]]}', "family: expected a family that takes a matrix"),
        ('{"src": [[0, 0], [1, 0], [0, 1]]}', "dst: expected control points to go with src"),
        ("[1, 2]", "transform: expected a JSON object, got list"),
    ],
)
def test_bad_transform_files(files, capsys, spec, fragment):
    (files / "bad.json").write_text(spec)
    _error(
        capsys,
        ["warp", str(files / "gray8.png"), str(files / "o.png"), "--transform", str(files / "bad.json")],
        fragment,
    )


def test_existing_output_is_kept_unless_force(files, capsys):
    target = files / "keep.png"
    target.write_bytes(b"precious")
    argv = ["warp", str(files / "gray8.png"), str(target), "--matrix", "1,0,1,0,1,0"]
    _error(capsys, argv, "output: expected a path that does not exist yet")
    assert target.read_bytes() == b"precious"
    assert main([*argv, "--force"]) == 0
    assert _read(target).shape == (24, 30)


def test_unwritable_outputs_leave_nothing_behind(files, capsys):
    _error(
        capsys,
        ["warp", str(files / "gray8.png"), str(files / "o.xyz"), "--matrix", "1,0,0,0,1,0"],
        "output: expected an image extension OpenCV can write",
    )
    _error(
        capsys,
        ["warp", str(files / "gray8.png"), str(files / "no" / "dir.png"), "--matrix", "1,0,0,0,1,0"],
        "output: expected a writable directory",
    )
    _error(
        capsys,
        ["warp", str(files / "colour16.tif"), str(files / "o16.jpg"), "--matrix", "1,0,0,0,1,0"],
        "output: expected a format that can hold",
    )
    assert sorted(p.name for p in files.iterdir() if p.name.startswith((".warpkit", "o"))) == []


def test_failure_during_write_keeps_old_file(files, monkeypatch):
    """A crash while the bytes are written leaves the old output untouched and no temporary file."""
    from warpkit import _io

    target = files / "old.png"
    target.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io.os, "fsync", broken_fsync)
    with pytest.raises(_io.ImageIOError, match="No space left"):
        _io.write_image(target, np.zeros((4, 4), np.uint8), overwrite=True)
    assert target.read_bytes() == b"old"
    assert [p.name for p in files.iterdir() if p.name.startswith(".warpkit")] == []


def test_unicode_paths(files):
    source = files / "bild-ä.png"
    source.write_bytes((files / "gray8.png").read_bytes())
    assert main(["warp", str(source), str(files / "ausgabe-ö.png"), "--matrix", "1,0,0,0,1,0"]) == 0
    assert np.array_equal(_read(files / "ausgabe-ö.png"), _read(files / "gray8.png"))


def test_subprocess_exit_status_and_single_line(files):
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "warpkit",
            "warp",
            str(files / "gray8.png"),
            str(files / "sub.png"),
            "--matrix",
            "1,0,0,0,1,0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "warpkit",
            "warp",
            str(files / "corrupt.png"),
            str(files / "x.png"),
            "--matrix",
            "1,0,0,0,1,0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("warpkit warp: error: input:")
    assert not (files / "x.png").exists()
