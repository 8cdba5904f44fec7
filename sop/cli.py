"""`python -m sop <command>`: each command lives in sop/commands/<name>.py.

A command module defines `register(subparsers)`, which adds its parser and sets
`func=run`; modules are discovered, so adding a command touches no other file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sop", description="Sum-of-Parts: train, evaluate, explain.")
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Commands that must re-execute themselves (pinned training) may do so only when they
    # are this process's own command line, never when called from Python (e.g. a test).
    args.reexec_argv = sys.argv[1:] if argv is None else None
    from .errors import SOPError
    try:
        return int(args.func(args) or 0)
    except SOPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
