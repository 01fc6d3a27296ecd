"""``kernelflow info [--json]``: what is compiled and usable here (build_info), the CPU (model and
the SIMD flags that pick kernel paths) and the code path each op family runs on it."""

from __future__ import annotations

import argparse
import json

from kernelflow.cli._common import print_kv

ORDER = 0


def cmd_info(args: argparse.Namespace) -> int:
    import kernelflow  # noqa: PLC0415
    from kernelflow.bench.timing import cpu_model  # noqa: PLC0415

    info = kernelflow.build_info()
    cpu = cpu_model()
    info["cpu"] = {"model": cpu["cpu_model"], "isa_flags": cpu["isa_flags"]}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print_kv(info)
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="what is compiled and usable here, and each op family's CPU code path")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)
