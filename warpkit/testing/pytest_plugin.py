"""pytest plugin for warpkit family authors (entry point ``pytest11: warpkit``).

It adds the option ``--warpkit-compile-backend`` (the ``torch.compile`` backend of the ``compile``
check; default ``aot_eager``, ``inductor`` compiles for real and is slow) and the fixture
``warpkit_check``, which runs the conformance kit and fails the test with the report's table::

    def test_my_family(warpkit_check):
        warpkit_check(MyFamily)

pytest loads this module in every session of an environment where warpkit is installed, so it imports only
pytest (and the two lazy package shells above it): torch and the kit load when a test asks for the fixture,
and ``--warpkit-compile-backend`` loads the kit only when it is given. cv2 and kornia are only needed by the
checks that use them, and those are skipped when they are missing.
"""

from __future__ import annotations

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "warpkit_check"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("warpkit", "warpkit conformance kit")
    group.addoption(
        "--warpkit-compile-backend",
        default=None,
        help="torch.compile backend of the kit's compile check (default aot_eager; inductor is slow)",
    )


def pytest_configure(config: pytest.Config) -> None:
    backend = config.getoption("--warpkit-compile-backend", default=None)
    if backend:
        from . import _kit  # noqa: PLC0415 - only when asked for

        _kit.COMPILE_BACKEND = backend


@pytest.fixture
def warpkit_check():
    """``warpkit_check(FamilyOrName, checks=None)``: run the kit; fail with the table when a check fails."""
    from ._kit import check_family  # noqa: PLC0415

    def run(family, checks=None):
        report = check_family(family, checks)
        if not report.passed:
            pytest.fail(f"conformance kit failed for {report.family}:\n{report.table()}", pytrace=False)
        return report

    return run
