"""Command-line conventions: subcommands with their own help, ``--version``, usage errors that name the bad
argument on stderr with exit status 2, no torch import for ``--help`` and usage errors, missing extras named."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from warpkit.cli import COMMANDS, main

# Each run is a fresh interpreter so that sys.modules shows what the command line itself imported.
_PROBE = (
    "import sys\n"
    "from warpkit.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = sorted(m for m in ('torch', 'numpy', 'cv2', 'numba') if m in sys.modules)\n"
    "print('IMPORTED:' + ','.join(heavy), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120)


def _imported(result: subprocess.CompletedProcess) -> list[str]:
    line = [x for x in result.stderr.splitlines() if x.startswith("IMPORTED:")][-1]
    return [m for m in line[len("IMPORTED:") :].split(",") if m]


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], *[[name, "--help"] for name in COMMANDS]], ids=lambda a: " ".join(a)
)
def test_help_and_version_answer_without_importing_torch(args):
    result = _probe(*args)
    assert result.returncode == 0, result.stderr
    assert _imported(result) == []  # not even numpy (half a second on a busy machine)
    assert result.stdout.strip()


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["families", "--bogus"],
        ["check", "--bogus", "affine"],
        ["bench", "--threads", "two"],
        ["warp", "in.png", "out.png", "--bogus"],
        ["nosuchcommand"],
        [],
    ],
    ids=lambda a: " ".join(a) or "no command",
)
def test_usage_errors_go_to_stderr_with_status_2_without_importing_torch(args):
    result = _probe(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert _imported(result) == []
    error = [x for x in result.stderr.splitlines() if x.startswith("warpkit")][-1]
    named = next((a for a in args if a.startswith("--bogus") or a in ("two", "nosuchcommand")), "COMMAND")
    assert named in error, error


def test_version_names_the_version_and_the_distribution(capsys):
    import warpkit

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"warpkit {warpkit.__version__} (distribution torch-warpkit)"


def test_every_subcommand_has_its_own_help(capsys):
    for name in COMMANDS:
        assert main([name, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: warpkit {name}"), out[:80]
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert all(name in top for name in COMMANDS)


def test_subcommand_errors_go_to_stderr_with_status_2(capsys):
    assert main(["check", "affine", "--checks", "identity,nonsense"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--checks" in captured.err and "nonsense" in captured.err


def test_a_missing_optional_package_names_the_extra_in_one_line(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['cv2'] = None  # as if OpenCV were not installed\n"
        "from warpkit.cli import main\n"
        f"sys.exit(main(['warp', {str(tmp_path / 'in.png')!r}, {str(tmp_path / 'out.png')!r}, '--matrix', '1,0,0,0,1,0']))\n"
    )
    (tmp_path / "in.png").write_bytes(b"")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "warpkit warp: error: needs the optional package 'cv2', not installed: pip install 'torch-warpkit[cli]'"
    ]


def test_the_extra_named_for_cv2_installs_it():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

    from warpkit.cli import EXTRAS

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    distribution = {"cv2": "opencv-python-headless", "skimage": "scikit-image", "kornia": "kornia"}
    for module, extra in EXTRAS.items():
        if module in distribution:
            assert any(dep.startswith(distribution[module]) for dep in extras.get(extra, [])), (module, extra)


def test_bench_pins_its_backend_and_gives_the_callers_environment_back(monkeypatch):
    from warpkit.cli import _bench

    monkeypatch.setenv("WARPKIT_BACKEND", "torch")
    with _bench._backend("reference"):
        assert os.environ["WARPKIT_BACKEND"] == "reference"
    assert os.environ["WARPKIT_BACKEND"] == "torch"
    monkeypatch.delenv("WARPKIT_BACKEND")
    with _bench._backend("auto"):
        assert os.environ["WARPKIT_BACKEND"] == "auto"
    assert "WARPKIT_BACKEND" not in os.environ


def test_bench_has_out_and_writes_nothing_by_default(capsys):
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--out PNG" in out
    import argparse

    from warpkit.cli import _bench

    parser = argparse.ArgumentParser()
    _bench.add_arguments(parser)
    assert parser.parse_args([]).out is None
    assert parser.parse_args(["--out", "x.png"]).out == "x.png"


def test_help_is_fast():
    """Not a speed claim: a guard that ``--help`` stays an argparse round trip (torch alone takes seconds)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "warpkit", "--help"], capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
        assert result.returncode == 0
    assert min(times) < 1.5, times
