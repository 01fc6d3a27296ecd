"""The hostile-input corpus (see cases/): every case runs in one shared worker subprocess
(runner.py), so a segfault or hang is that case's recorded failure, not a dead test run. A case
whose fix belongs to code not yet merged is xfail(strict=True) with the owner in the reason:
it turns into a failure the day it passes, so the marker is removed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import Runner, all_cases  # noqa: E402

CASES = all_cases()


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.stop()


def _param(c):
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c.name, id=c.name, marks=marks)


@pytest.mark.parametrize("name", [_param(c) for c in CASES.values()])
def test_case(name, runner):
    res = runner.run(name, CASES[name].timeout)
    if res["status"] != "pass":
        pytest.fail(f"{res['status']}: {res['message']}", pytrace=False)


def test_corpus_size_and_areas():
    from _case import AREAS

    assert len(CASES) >= 200, f"the corpus holds {len(CASES)} cases"
    per_area = {a: sum(n.startswith(a + "/") for n in CASES) for a in AREAS}
    assert all(per_area.values()), f"an area has no case: {per_area}"


def test_runner_survives_crash_hang_and_exit():
    r = Runner()
    try:
        assert r.run("__selftest__/segfault", 60)["status"] == "crash"
        assert r.run("__selftest__/hang", 3)["status"] == "hang"
        res = r.run("__selftest__/exit", 60)
        assert res["status"] == "crash" and "exit status 3" in res["message"], res
        name = next(iter(CASES))
        assert r.run(name, CASES[name].timeout)["status"] in ("pass", "fail", "error")
        assert r.starts == 4, r.starts  # restarted after each, and only then
    finally:
        r.stop()
