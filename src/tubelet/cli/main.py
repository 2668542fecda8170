"""The ``tubelet`` command line.

Each sub-command lives in its own module ``tubelet/cli/cmd_<name>.py`` exposing
``register(subparsers)``, which adds a parser and sets ``func`` to the function that runs it.
Modules are discovered automatically, so adding a command never touches this file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from tubelet.errors import InputError


def allow_intermixed(p: argparse.ArgumentParser) -> None:
    """Let ``key=value`` overrides follow options (``OUT_DIR --seed 1 max_frames=5``).

    Plain argparse binds every positional in the first run of positionals (OUT_DIR), so later
    overrides are "unrecognized". The sub-parser therefore parses intermixed; the dispatcher's
    call to ``parse_known_args`` is redirected, and the intermixed parser's own inner calls go
    to the plain method.
    """
    plain = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        p.parse_known_args = plain
        try:
            return p.parse_known_intermixed_args(args, namespace)
        finally:
            p.parse_known_args = parse_known_args
    p.parse_known_args = parse_known_args


def set_threads(n: int) -> None:
    """``--threads N``: torch's intra-op CPU threads (0 = leave torch's default)."""
    if n < 0:
        raise InputError(f"must be >= 0, got {n}", field="--threads")
    if n:
        import torch
        torch.set_num_threads(n)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tubelet", description="Video instance segmentation toolkit.")
    from tubelet import __version__
    parser.add_argument("--version", action="version", version=f"tubelet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import tubelet.cli as pkg
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"tubelet.cli.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except InputError as exc:
        # one line, whatever the message holds (torch's load_state_dict errors span several)
        msg = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"tubelet {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tubelet {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # disk full, permissions, a path that became a file mid-run: the environment, not a bug,
        # so one line (issue 13) -- the output paths are also checked before the work starts
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"tubelet {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__name__ != "DecompressionBombError":  # PIL's, raised by Image.open
            raise
        # an image declaring more pixels than PIL's guard allows (a few-KB PNG of 30k x 30k)
        print(f"tubelet {args.command}: error: refused to decode an image: {exc}",
              file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
