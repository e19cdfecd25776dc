"""``warpkit check [NAME ...] [--json]``: run the conformance kit; exit 1 when any check fails."""

from __future__ import annotations

import argparse
import sys
import warnings

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="families to check (default: every registered one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--checks", default=None, metavar="NAMES", help="comma-separated subset of the kit's checks (default: all)"
    )
    parser.add_argument(
        "--compile-backend",
        default=None,
        help="torch.compile backend of the compile check (default aot_eager; inductor is slow)",
    )


def run(args: argparse.Namespace) -> int:
    """Print one row per check and family; 0 only when every check passed (skips allowed)."""
    from .._registry import family_records  # noqa: PLC0415 - torch only when the command runs
    from ..testing import _kit  # noqa: PLC0415

    if args.compile_backend:
        _kit.COMPILE_BACKEND = args.compile_backend
    checks = None if args.checks is None else [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = [c for c in checks or [] if c not in _kit.CHECKS]
    if unknown:
        print(
            f"warpkit check: --checks: expected names from {', '.join(_kit.CHECKS)}, got {', '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plugin failures show up as failed `load` rows
        names = args.names or [r.name for r in family_records(load=True) if r.status != "refused"]
        reports = [_kit.check_family(name, checks) for name in names]
    if args.json:
        print(_kit.reports_to_json(reports))
    else:
        print(_kit.format_table(reports))
        failed = [r.family for r in reports if not r.passed]
        total = sum(1 for r in reports for c in r.results if c.passed is False)
        print(f"\n{len(reports)} families, {total} failed checks" + (f" ({', '.join(failed)})" if failed else ""))
    return 0 if all(r.passed for r in reports) else 1
