"""``warpkit families``: every registered family with its origin and status (plugins are imported)."""

from __future__ import annotations

import argparse
import json
import warnings

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print the table; exit 1 when a plugin failed to load or was refused, else 0."""
    from .._registry import family_records  # noqa: PLC0415 - torch only when the command runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failures are in the table, no need to say them twice
        records = family_records(load=True)
    rows = []
    for r in records:
        origin = r.origin if r.distribution is None else f"{r.distribution} {r.version or ''}".rstrip()
        status = r.status if r.error is None else f"{r.status}: {r.error}"
        capabilities = _capabilities(r.family) if r.family is not None else ""
        rows.append(
            {"name": r.name, "origin": origin, "target": r.target, "capabilities": capabilities, "status": status}
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        header = {"name": "name", "origin": "origin", "capabilities": "capabilities", "status": "status"}
        table = [header] + rows
        widths = {key: max(len(str(row[key])) for row in table) for key in ("name", "origin", "capabilities")}
        for row in table:
            cells = [str(row[key]).ljust(width) for key, width in widths.items()]
            print("  ".join([*cells, str(row["status"])]).rstrip())
    return 1 if any(r.status in ("failed", "refused") for r in records) else 0


def _capabilities(family) -> str:
    flags = []
    if family.has_matrix:
        flags.append("matrix")
    if family.num_params:
        flags.append(f"params={family.num_params}")
    if family.can_estimate():
        flags.append("estimate")
    return ",".join(flags) or "-"
