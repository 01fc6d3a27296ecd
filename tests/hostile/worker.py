"""Corpus worker: imports the cases once, then runs the case named on each stdin line and
writes one JSON line per case ({"name", "status": pass | fail | error, "message", "seconds"})
to the stdout it started with (the cases' own output goes to stderr). The parent (runner.py)
restarts it when a case crashes the process or exceeds its time limit."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
results = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # prints from the library or the cases cannot corrupt the result stream
sys.stdout = sys.stderr
warnings.simplefilter("ignore")

from _case import CASES  # noqa: E402
import cases  # noqa: E402,F401  (registers every case)

def _segfault():
    import ctypes

    ctypes.string_at(0)


SELFTEST = {"__selftest__/segfault": _segfault, "__selftest__/hang": lambda: time.sleep(1e6),
            "__selftest__/exit": lambda: os._exit(3)}
results.write(json.dumps({"ready": len(CASES)}) + "\n")
for line in sys.stdin:
    name = line.strip()
    if not name:
        continue
    c = CASES.get(name)
    t0 = time.perf_counter()
    if name in SELFTEST:  # the runner's own test: a crash, a hang, an exit
        SELFTEST[name]()
    if c is None:
        status, msg = "error", f"no case named {name!r}"
    else:
        try:
            c.fn()
            status, msg = "pass", ""
        except AssertionError as e:
            status, msg = "fail", str(e) or traceback.format_exc(limit=-3)
        except BaseException as e:  # noqa: BLE001 - an unexpected exception is this case's result
            status, msg = "error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}"
    results.write(json.dumps({"name": name, "status": status, "message": msg[:4000],
                              "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
