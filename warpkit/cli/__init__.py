"""The ``warpkit`` command line: argparse subcommands, each in its own module with ``add_arguments`` and ``run``.

Conventions: every subcommand has its own ``--help``; ``warpkit --version``; usage errors (an unknown flag or
command names itself) go to stderr with exit status 2, as do the subcommands' own one-line errors. Only the
module of the subcommand being run is imported, and those modules import torch inside ``run``: ``--help``,
``--version`` and usage errors answer without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "missing_extra", "COMMANDS", "EXTRAS"]

#: subcommand -> (module, one-line help)
COMMANDS = {
    "families": ("_families", "list the registered transform families"),
    "check": ("_check", "run the conformance kit on families; non-zero exit when a check fails"),
    "report": ("_report", "warp a real image with every family and compare with OpenCV and Kornia"),
    "warp": ("_warp", "warp an image file"),
    "bench": ("_bench", "benchmark warpkit against torch, kornia and OpenCV"),
    "demo": ("_demo", "run a demo experiment (stn)"),
}

#: optional module -> the extra that installs it (``pip install 'torch-warpkit[EXTRA]'``)
EXTRAS = {
    "cv2": "cli",
    "skimage": "report",
    "kornia": "report",
    "matplotlib": "demo",
    "sklearn": "demo",
    "tqdm": "demo",
    "mlxtend": "demo",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line error for an optional package that is not installed, naming the extra that installs it
    (None when the missing module is not one of :data:`EXTRAS`)."""
    top = (exc.name or "").partition(".")[0]
    if top not in EXTRAS:
        return None
    return f"needs the optional package {top!r}, not installed: pip install 'torch-warpkit[{EXTRAS[top]}]'"


def _version() -> str:
    from .. import __version__  # noqa: PLC0415 - the package shell: no torch

    return f"warpkit {__version__} (distribution torch-warpkit)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; only ``command``'s module is imported to add its arguments (the others are
    listed with their help line but never parsed)."""
    parser = argparse.ArgumentParser(
        prog="warpkit",
        description="Differentiable image warping for PyTorch. Run `warpkit COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            # a light `<module>_args` module, where there is one, defines the options of a heavy command
            arguments = _import(f"{module_name}_args") or _import(module_name)
            arguments.add_arguments(command_parser)
            command_parser.set_defaults(_run=lambda options, m=module_name: _import(m).run(options))
    return parser


def _import(module_name: str):
    """``warpkit.cli.<module_name>``, or None when there is no such module."""
    try:
        return importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{module_name}":
            raise
        return None


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: the first argument that is not an option (None if there is none)."""
    for argument in argv:
        if argument == "--":
            return None
        if not argument.startswith("-"):
            return argument if argument in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse's exits for ``--help``/usage errors included)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(arguments)
    try:
        parser = build_parser(command)
        if command is None:  # else argparse would only say that COMMAND is missing
            unknown = [a for a in arguments if a.startswith("-") and a not in ("-h", "--help", "--version")]
            if unknown:
                parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        options, extras = parser.parse_known_args(arguments)
        if extras:  # reported by the subcommand's parser, which may have its own error style
            _subparser(parser, options.command).error(f"unrecognized arguments: {' '.join(extras)}")
        return int(options._run(options) or 0)
    except SystemExit as exc:  # argparse's --help, --version and usage errors: return the code instead of exiting
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)
        if message is None:
            raise
        print(f"warpkit {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"warpkit {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
