"""Copy the JSON results of a gpu_check.sh run into benchmarks/results/.

    python scripts/record_gpu_results.py FETCHED_OUT_DIR [--device NAME] [--commit SHA] [--date YYYY-MM-DD]

Each <name>.json becomes benchmarks/results/<name>_<device>_<commit>_<date>.json with a
"recorded" block (device, commit, date, source); summary.json is recorded as gpu_check_... .
Device, commit and date default to what the run wrote (summary.json, then each file's
"machine" block), then to this checkout's HEAD and today.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def slug(s: str) -> str:
    s = re.sub(r"^NVIDIA\s+", "", s.strip())
    return re.sub(r"[^A-Za-z0-9.]+", "-", s).strip("-").lower() or "unknown"


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=ROOT).stdout.strip()
    except Exception:
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="folder fetched from the GPU machine ($OUT of gpu_check.sh)")
    ap.add_argument("--dest", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--device")
    ap.add_argument("--commit")
    ap.add_argument("--date")
    args = ap.parse_args(argv)
    files = sorted(f for f in os.listdir(args.src) if f.endswith(".json"))
    if not files:
        print(f"no JSON files in {args.src}", file=sys.stderr)
        return 1
    summary = {}
    if "summary.json" in files:
        with open(os.path.join(args.src, "summary.json")) as f:
            summary = json.load(f)
    os.makedirs(args.dest, exist_ok=True)
    for name in files:
        with open(os.path.join(args.src, name)) as f:
            doc = json.load(f)
        machine = doc.get("machine", {}) if isinstance(doc, dict) else {}
        device = args.device or summary.get("device") or machine.get("device") or "unknown"
        commit = args.commit or summary.get("commit") or machine.get("commit")
        commit = commit if commit and commit != "unknown" else git_head()
        date = args.date or (summary.get("date") or machine.get("date") or dt.date.today().isoformat())[:10]
        stem = "gpu_check" if name == "summary.json" else name[:-5]
        out = os.path.join(args.dest, f"{stem}_{slug(device)}_{commit}_{date}.json")
        doc = {"recorded": {"device": device, "commit": commit, "date": date, "source": name}, **doc}
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"{name} -> {os.path.relpath(out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
