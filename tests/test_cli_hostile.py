"""``warpkit warp`` against hostile input: crafted files (tests/data/crafted, made by its make_crafted.py),
signals, leftovers of killed runs, formats that cannot hold the result, and fill values per channel.

Every failure must be exit status 2 with exactly one line on stderr, no traceback and no file left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from warpkit.cli import main  # noqa: E402

CRAFTED = Path(__file__).resolve().parent / "data" / "crafted"
SHIFT = ["--matrix", "1,0,1.5,0,1,-2"]

# crafted input image -> how the one-line error starts (after "warpkit warp: error: ")
BAD_IMAGES = {
    "bomb-100000x100000.png": "input: expected an image of at most 134,217,728 pixels",
    "bomb-65000x65000.jpg": "input: expected an image of at most 134,217,728 pixels",
    "bomb-100000x100000.tif": "input: expected an image of at most 134,217,728 pixels",
    "truncated.png": "input: expected an image file OpenCV can decode",
    "bad-crc.png": "input: expected an image file OpenCV can decode",
    "garbage.png": "input: expected an image file OpenCV can decode",
    "empty.png": "input: expected an image file OpenCV can decode",
    "text.jpg": "input: expected an image file OpenCV can decode",
}
# crafted --transform file (with a good image) -> how the error starts
BAD_TRANSFORMS = {
    "numeric-strings.json": 'matrix: expected 2x3 or 3x3 numbers (finite JSON numbers), got "1"',
    "regularization-true.json": "regularization: expected a number >= 0, got true",
    "nested-params.json": "params: expected a flat list of numbers",
    "batched-matrix.json": "matrix: expected 2x3 or 3x3 numbers",
    "nan.json": "--transform: expected finite JSON numbers, got NaN",
    "duplicate-keys.json": "--transform: expected each key once, got 'matrix'",
    "bool-in-points.json": "src: expected [[x, y], ...] points (finite JSON numbers), got true",
    "ragged-points.json": "src: expected [[x, y], ...] points",
    "not-an-object.json": "transform: expected a JSON object, got list",
}


def run_cli(capfd, *arguments) -> tuple[int, str, str]:
    code = main(["warp", *map(str, arguments)])
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, start: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"warpkit warp: error: {start}"), err


def test_crafted_files_are_all_covered():
    made = {p.name for p in CRAFTED.iterdir() if p.suffix != ".py"}
    assert made == set(BAD_IMAGES) | set(BAD_TRANSFORMS) | {"good.png", "ancillary-bad-crc.png"}
    assert all(p.stat().st_size < 8192 for p in CRAFTED.iterdir())


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_crafted_image_fails_in_one_line_and_leaves_nothing(capfd, tmp_path, name):
    code, out, err = run_cli(capfd, CRAFTED / name, tmp_path / "out.png", *SHIFT)
    assert_one_line_error(code, err, BAD_IMAGES[name])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(BAD_TRANSFORMS))
def test_crafted_transform_fails_in_one_line_and_leaves_nothing(capfd, tmp_path, name):
    code, out, err = run_cli(capfd, CRAFTED / "good.png", tmp_path / "out.png", "--transform", CRAFTED / name)
    assert_one_line_error(code, err, BAD_TRANSFORMS[name])
    assert list(tmp_path.iterdir()) == []


def test_codec_warnings_do_not_reach_stderr(capfd, tmp_path):
    """libpng prints 'libpng warning: tEXt: CRC error' itself; the warp succeeds and says nothing on stderr."""
    code, out, err = run_cli(capfd, CRAFTED / "ancillary-bad-crc.png", tmp_path / "out.png", *SHIFT)
    assert code == 0 and err == "", err
    expected = cv2.warpAffine(cv2.imread(str(CRAFTED / "good.png")), np.array([[1, 0, 1.5], [0, 1, -2.0]]), (16, 12))
    assert np.abs(cv2.imread(str(tmp_path / "out.png")).astype(int) - expected).max() <= 1


def test_header_limit_is_configurable(capfd, tmp_path, monkeypatch):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.zeros((20, 30), np.uint8))
    code, _, err = run_cli(capfd, image, tmp_path / "a.png", *SHIFT, "--max-pixels", 599)
    assert_one_line_error(code, err, "input: expected an image of at most 599 pixels")
    monkeypatch.setenv("WARPKIT_MAX_IMAGE_PIXELS", "100")
    code, _, err = run_cli(capfd, image, tmp_path / "b.png", *SHIFT)
    assert_one_line_error(code, err, "input: expected an image of at most 100 pixels")
    code, _, err = run_cli(capfd, image, tmp_path / "c.png", *SHIFT, "--max-pixels", 600, "--size", "30x21")
    assert_one_line_error(code, err, "--size: expected an output of at most 600 pixels")
    code, _, err = run_cli(capfd, image, tmp_path / "d.png", *SHIFT, "--max-pixels", 600)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "in.png"]


def test_alpha_into_jpeg_is_refused_before_the_work(capfd, tmp_path):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.full((10, 12, 4), 200, np.uint8))
    code, _, err = run_cli(capfd, image, tmp_path / "out.jpg", *SHIFT)
    assert_one_line_error(
        code,
        err,
        "output: expected a format that can hold a uint8 colour+alpha image, got '.jpg', which would store it as uint8 colour image",
    )
    code, _, err = run_cli(capfd, image, tmp_path / "out16.jpg", *SHIFT)
    assert list(p.name for p in tmp_path.iterdir()) == ["in.png"]
    sixteen = tmp_path / "in16.png"
    cv2.imwrite(str(sixteen), np.full((10, 12), 60000, np.uint16))
    code, _, err = run_cli(capfd, sixteen, tmp_path / "out16.jpg", *SHIFT)
    assert_one_line_error(code, err, "output: expected a format that can hold a uint16 gray image, got '.jpg'")


@pytest.mark.parametrize("dtype", [np.int8, np.int32])
def test_compare_opencv_on_depths_opencv_cannot_warp_is_skipped_not_a_traceback(capfd, tmp_path, dtype):
    image = tmp_path / "in.tif"
    cv2.imwrite(str(image), (np.arange(20 * 30).reshape(20, 30) % 100).astype(dtype))
    code, out, err = run_cli(capfd, image, tmp_path / "out.tif", *SHIFT, "--compare-opencv")
    assert code == 0 and err == "", err
    assert f"{np.dtype(dtype)} output vs OpenCV on {np.dtype(dtype)}: skipped" in out
    assert cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED).dtype == dtype


def test_compare_opencv_on_a_hanging_case_is_skipped(capfd, tmp_path):
    """A homography whose horizon crosses the output, nearest + reflect: OpenCV would take seconds to forever."""
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8))
    start = time.perf_counter()
    code, out, err = run_cli(
        capfd,
        image,
        tmp_path / "out.png",
        "--matrix",
        "1,0,0,0,1,0,0.05,0,1",
        "--interpolation",
        "nearest",
        "--padding",
        "reflect",
        "--compare-opencv",
    )
    assert code == 0 and err == "", err
    assert "compare-opencv: skipped: matrix: OpenCV's nearest with reflect" in out
    assert time.perf_counter() - start < 60


# --- fill: any channel count, RGB(A) order ----------------------------------------------------------


@pytest.mark.parametrize(
    "channels, fill, stored",
    [
        (1, "40", [40]),
        (3, "40", [40, 40, 40]),  # one value for every channel (this failed on every colour image)
        (3, "200,100,7", [7, 100, 200]),  # given R,G,B; the file stores B,G,R
        (4, "200,100,7,255", [7, 100, 200, 255]),  # R,G,B,A -> B,G,R,A
    ],
)
def test_fill_any_channel_count_in_rgb_order(capfd, tmp_path, channels, fill, stored):
    shape = (10, 12) if channels == 1 else (10, 12, channels)
    data = np.random.default_rng(channels).integers(0, 256, shape, dtype=np.uint8)
    image = tmp_path / "in.tif"
    cv2.imwrite(str(image), data)
    code, _, err = run_cli(
        capfd,
        image,
        tmp_path / "out.tif",
        "--matrix",
        "1,0,4,0,1,3",
        "--padding",
        "constant",
        "--fill",
        fill,
        "--interpolation",
        "nearest",
    )
    assert code == 0, err
    out = cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED)
    reference = cv2.warpAffine(
        data,
        np.array([[1, 0, 4], [0, 1, 3.0]]),
        (12, 10),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(stored) + (0,) * (4 - len(stored)),
    )
    np.testing.assert_array_equal(out, reference)
    np.testing.assert_array_equal(out.reshape(10, 12, -1)[0, 0], stored)


def test_fill_with_the_wrong_count_names_the_channel_order(capfd, tmp_path):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.zeros((4, 5, 4), np.uint8))
    code, _, err = run_cli(capfd, image, tmp_path / "out.png", *SHIFT, "--padding", "constant", "--fill", "1,2")
    assert_one_line_error(code, err, "--fill: expected 1 number or 4 (one per channel, in R, G, B, A order), got 2")


# --- signals and leftovers ------------------------------------------------------------------------


SLOW_WRITE = """
import os, sys, time
from warpkit import _io
real = os.fsync
def slow(fd):  # a slow disk: the temporary file exists while we wait
    print("writing", flush=True)
    time.sleep(60)
    real(fd)
_io.os.fsync = slow
from warpkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "signum, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_signal_mid_write_removes_the_temporary_and_says_one_line(tmp_path, signum, code, word):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.zeros((8, 9, 3), np.uint8))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    script = tmp_path / "slow.py"
    script.write_text(SLOW_WRITE)
    process = subprocess.Popen(
        [sys.executable, str(script), "warp", str(image), str(out_dir / "out.png"), *SHIFT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "writing"
        assert len(list(out_dir.iterdir())) == 1  # the temporary
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, err
    assert err == f"warpkit warp: {word}\n"
    assert list(out_dir.iterdir()) == []


def test_a_killed_runs_leftover_is_removed_by_the_next_run(capfd, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".out.png.warpkit-{dead.pid}-0123abcd.tmp"
    leftover.write_bytes(b"\x89PNG half a file")
    alive = tmp_path / f".other.png.warpkit-{os.getpid()}-89abcdef.tmp"  # a live process's: left alone
    alive.write_bytes(b"in progress")
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.zeros((8, 9), np.uint8))
    code, _, err = run_cli(capfd, image, tmp_path / "out.png", *SHIFT)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "in.png", "out.png"])


@pytest.mark.parametrize("extension", [".png", ".jpg", ".tif", ".bmp", ".ppm", ".pgm", ".webp"])
def test_header_size_reads_what_opencv_wrote(extension):
    """The pixel limit is judged from the header: its width and height must be the image's, for every format."""
    from warpkit._io import header_size

    image = (np.random.default_rng(5).random((37, 53, 3)) * 255).astype(np.uint8)
    ok, encoded = cv2.imencode(extension, image[..., 0] if extension == ".pgm" else image)
    assert ok
    assert header_size(encoded.tobytes()) == (53, 37)
    assert header_size(b"not an image at all") is None and header_size(b"\x89PNG\r\n\x1a\n") is None
