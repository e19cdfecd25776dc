"""The ``warpkit`` command line. Each subcommand lives in its own module with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# subcommand -> module (imported only when that subcommand runs, so `warpkit families` stays fast)
_COMMANDS = {
    "families": ("_families", "list the registered transform families"),
    "check": ("_check", "run the conformance kit on families; non-zero exit when a check fails"),
    "report": ("_report", "warp a real image with every family and compare with OpenCV and Kornia"),
    "warp": ("_warp", "warp an image file"),
    "bench": ("_bench", "benchmark warpkit against torch, kornia and OpenCV"),
    "demo": ("_demo", "run a demo experiment (stn)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warpkit", description="Differentiable image warping for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in _COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    try:
        args, rest = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        module = importlib.import_module(f"{__name__}.{_COMMANDS[args.command][0]}")
        command_parser = argparse.ArgumentParser(prog=f"warpkit {args.command}", description=_COMMANDS[args.command][1])
        module.add_arguments(command_parser)
        options = command_parser.parse_args(rest)
    except SystemExit as exc:  # argparse's --help and usage errors: return the code instead of exiting
        return exc.code if isinstance(exc.code, int) else 2
    return int(module.run(options) or 0)


if __name__ == "__main__":
    sys.exit(main())
