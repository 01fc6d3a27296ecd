"""Runs corpus cases in ONE worker subprocess, one after another, so a case that crashes the
process (segfault, abort) or hangs is recorded as that case's failure and the worker is
restarted, instead of killing the test run. Importing torch costs seconds, so a fresh
interpreter per case would not fit CI's two cores.

    python tests/hostile/runner.py [substring ...]   # run (matching) cases, print a summary
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STARTUP_TIMEOUT = 180.0  # importing torch, kernelflow and the cases on a loaded 2-core machine


class Runner:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.err = None
        self.starts = 0

    def _env(self) -> dict:
        env = dict(os.environ)
        try:  # the worker imports the same kernelflow as this process (installed or the tree)
            import kernelflow

            pkg_parent = str(Path(kernelflow.__file__).resolve().parents[1])
        except ImportError:  # run by hand from a source tree with a built extension
            pkg_parent = str(ROOT / "python")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH", "")) if p)
        try:
            import torch

            cuda = torch.cuda.is_available()
        except Exception:  # pragma: no cover
            cuda = False
        if not cuda:
            env.setdefault("TRITON_INTERPRET", "1")
        env["PYTHONFAULTHANDLER"] = "1"  # a crash leaves its stack in the worker's stderr
        return env

    def _start(self) -> None:
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, str(HERE / "worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, env=self._env(),
                                     cwd=tempfile.mkdtemp(prefix="kf_hostile_"), text=True, bufsize=1)
        self.starts += 1
        line = self._readline(STARTUP_TIMEOUT)
        if line is None or "ready" not in line:
            tail = self._stderr_tail()
            self.stop()
            raise RuntimeError(f"hostile-corpus worker did not start: {line!r}\n{tail}")

    def _readline(self, timeout: float) -> str | None:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                return None
            return self.proc.stdout.readline() or ""
        finally:
            sel.close()

    def _stderr_tail(self, n: int = 3000) -> str:
        if self.err is None:
            return ""
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-n:]

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(self, name: str, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.err.seek(0)
        self.err.truncate()
        t0 = time.perf_counter()
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        if line is None:  # still running past its limit
            self.stop()
            return {"name": name, "status": "hang", "seconds": round(time.perf_counter() - t0, 3),
                    "message": f"no result within {timeout:.0f} s: the worker was killed and restarted"}
        if not line:
            rc = self.proc.wait()
            tail = self._stderr_tail()
            self.proc = None
            what = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
            return {"name": name, "status": "crash", "seconds": round(time.perf_counter() - t0, 3),
                    "message": f"the worker process died ({what}) while running the case\n{tail}"}
        return json.loads(line)


def all_cases() -> dict:
    sys.path.insert(0, str(HERE))
    from _case import CASES

    import cases  # noqa: F401

    return CASES


def main(argv: list[str]) -> int:
    cases = all_cases()
    names = [n for n in cases if not argv or any(a in n for a in argv)]
    r = Runner()
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    try:
        for n in names:
            res = r.run(n, cases[n].timeout)
            st = res["status"]
            if cases[n].xfail:
                st = "xfail" if st != "pass" else "XPASS"
            counts[st] = counts.get(st, 0) + 1
            if st not in ("pass", "xfail"):
                print(f"{st.upper():6} {n}: {res['message'][:400]}")
    finally:
        r.stop()
    print(f"{len(names)} cases in {time.perf_counter() - t0:.1f} s, {r.starts} worker start(s): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0 if set(counts) <= {"pass", "xfail"} else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
