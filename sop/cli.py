"""`python -m sop <command>`: each command lives in sop/commands/<name>.py.

A command module defines `register(subparsers)`, which adds its parser and sets
`func=run`; modules are discovered, so adding a command touches no other file
(modules whose name starts with "_" are the commands' helpers, not commands).

The library reports progress through `logging` (loggers under "sop"); the CLI shows
those messages on stderr as plain lines, and its results on stdout.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so redirections and captures apply)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Show the library's progress messages ("sop.*" loggers) on stderr, one plain line each."""
    logger = logging.getLogger("sop")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sop", description="Sum-of-Parts: train, evaluate, explain.")
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Commands that must re-execute themselves (pinned training) may do so only when they
    # are this process's own command line, never when called from Python (e.g. a test).
    args.reexec_argv = sys.argv[1:] if argv is None else None
    configure_logging()
    from .errors import SOPError
    try:
        return int(args.func(args) or 0)
    except SOPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
