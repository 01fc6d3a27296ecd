"""The ``kernelflow`` command.

Each subcommand lives in its own module of this package (``kernelflow/cli/<name>.py``) and
exposes ``register(subparsers)``, which adds its parser and sets ``func``; ``main`` finds them,
so a new subcommand is one new file. ``kernelflow --help`` lists them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence


def _commands() -> list:
    mods = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
            if not m.name.startswith("_")]
    return sorted((m for m in mods if hasattr(m, "register")), key=lambda m: (getattr(m, "ORDER", 50), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kernelflow", description="The tabular ML workflow on compiled kernels.")
    sub = ap.add_subparsers(dest="command", required=True)
    for mod in _commands():
        mod.register(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        msg = check(args)
        if msg:
            ap.error(msg)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"kernelflow {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
