"""Drop-in compatibility, measured with scikit-learn's own tests.

At test time this copies ``preprocessing/tests/test_data.py``, ``preprocessing/tests/test_encoders.py``
and ``impute/tests/test_impute.py`` from the installed scikit-learn, rewrites every import of the
replaced estimators (``from sklearn... import StandardScaler`` -> ``from kernelflow.preprocessing
import StandardScaler``; nothing else is touched), runs the three files in one pytest subprocess
(scikit-learn's own conftest loaded as a plugin, so its fixtures and markers apply) and asserts
the pass rate of the relevant tests: those whose code (decorators, body, and the module-level
helpers, fixtures and constants they reach) names a replaced class. Tests scikit-learn itself
skips here are left out of the count.

``python tests/test_sklearn_compat.py`` prints the pass rates and every relevant test that fails.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPLACED = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "PowerTransformer",
            "OneHotEncoder", "OrdinalEncoder", "SimpleImputer")
FILES = {
    "test_data.py": ("preprocessing", "tests", "test_data.py"),
    "test_encoders.py": ("preprocessing", "tests", "test_encoders.py"),
    "test_impute.py": ("impute", "tests", "test_impute.py"),
}
TARGET = 0.95


def rewrite_imports(src: str) -> str:
    """Move the replaced names of every ``from sklearn... import`` statement to kernelflow's."""
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    edits = []  # (first line, last line, replacement text), 1-based inclusive
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sklearn"):
            continue
        ours = [a for a in node.names if a.name in REPLACED]
        if not ours:
            continue
        rest = [a for a in node.names if a.name not in REPLACED]
        indent = " " * node.col_offset
        new = []
        if rest:
            new.append(ast.unparse(ast.ImportFrom(module=node.module, names=rest, level=0)))
        new.append(ast.unparse(ast.ImportFrom(module="kernelflow.preprocessing", names=ours, level=0)))
        edits.append((node.lineno, node.end_lineno, "".join(f"{indent}{s}\n" for s in new)))
    for first, last, text in sorted(edits, reverse=True):
        lines[first - 1:last] = [text]
    return "".join(lines)


def relevant_tests(src: str) -> set[str]:
    """Names of the test functions (``test_x`` or ``TestC::test_x``) that reach a replaced class."""
    tree = ast.parse(src)
    defs: dict[str, ast.AST] = {}
    tests: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for m in node.body:
                    if isinstance(m, ast.FunctionDef) and m.name.startswith("test"):
                        tests[f"{node.name}::{m.name}"] = m
            elif node.name.startswith("test"):
                tests[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        defs[n.id] = node

    def names(node: ast.AST) -> set[str]:
        out = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        for n in ast.walk(node):  # fixtures are reached through argument names
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out |= {a.arg for a in n.args.args + n.args.kwonlyargs}
        return out

    memo: dict[str, bool] = {}

    def reaches(name: str, seen: set[str]) -> bool:
        if name in REPLACED:
            return True
        if name in memo:
            return memo[name]
        if name not in defs or name in seen:
            return False
        seen.add(name)
        hit = any(reaches(n, seen) for n in names(defs[name]))
        memo[name] = hit
        return hit

    return {t for t, node in tests.items() if any(reaches(n, set()) for n in names(node))}


def run_suite(workdir: Path, timeout: float = 1500.0, files=None, extra_args=()) -> dict[str, dict[str, tuple[str, str]]]:
    """Copy, rewrite and run the three files (or those named in files); {file: {test id:
    (outcome, message)}} for the relevant tests."""
    import sklearn

    import kernelflow

    root = Path(sklearn.__file__).parent
    relevant = {}
    paths = []
    for name, parts in FILES.items():
        if files is not None and name not in files:
            continue
        src = root.joinpath(*parts).read_text()
        relevant[name] = relevant_tests(src)
        (workdir / name).write_text(rewrite_imports(src))
        paths.append(name)
    xml = workdir / "junit.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(kernelflow.__file__).parent.parent), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "2")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "sklearn.conftest",
           "--rootdir", str(workdir), "-o", "addopts=", "-o", "junit_family=xunit1", "--continue-on-collection-errors",
           f"--junitxml={xml}", "-W", "ignore::DeprecationWarning", *extra_args, *paths]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if not xml.exists():
        raise RuntimeError(f"scikit-learn's tests did not run:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    out: dict[str, dict[str, tuple[str, str]]] = {name: {} for name in relevant}
    for case in ET.parse(xml).getroot().iter("testcase"):
        file = case.get("file") or ""
        cls = case.get("classname", "")
        name = next((f for f in relevant if f == Path(file).name or cls.split(".")[0] == f[:-3]), None)
        if name is None:
            continue
        test = case.get("name", "")
        base = test.split("[")[0]
        cls_parts = cls.split(".")
        key = f"{cls_parts[-1]}::{base}" if len(cls_parts) > 1 and cls_parts[-1].startswith("Test") else base
        if key not in relevant[name]:
            continue
        outcome, msg = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome, msg = tag, (el.get("message") or "").strip()
                break
        tid = f"{key}[{test.split('[', 1)[1]}" if "[" in test else key
        out[name][tid] = (outcome, msg)
    return out


def pass_rate(results: dict[str, tuple[str, str]]) -> tuple[int, int]:
    counted = [o for o, _ in results.values() if o != "skipped"]
    return sum(o == "passed" for o in counted), len(counted)


@pytest.fixture(scope="module")
def compat_results(tmp_path_factory):
    pytest.importorskip("sklearn")
    return run_suite(tmp_path_factory.mktemp("sklearn_compat"))


def test_rewrite_moves_only_replaced_names():
    src = ("from sklearn.preprocessing import (\n    Binarizer,\n    StandardScaler,\n)\n"
           "def f():\n    from sklearn.impute import SimpleImputer, KNNImputer\n")
    out = rewrite_imports(src)
    assert "from sklearn.preprocessing import Binarizer\nfrom kernelflow.preprocessing import StandardScaler\n" in out
    assert "    from sklearn.impute import KNNImputer\n    from kernelflow.preprocessing import SimpleImputer\n" in out
    ast.parse(out)


def test_relevance_follows_helpers_and_fixtures():
    src = ("import pytest\nfrom x import StandardScaler\nSCALERS = [StandardScaler()]\n"
           "def _helper():\n    return SCALERS\n"
           "@pytest.fixture\ndef est():\n    return _helper()\n"
           "def test_a(est):\n    pass\n"
           "def test_b():\n    _helper()\n"
           "def test_c():\n    pass\n"
           "class TestK:\n    def test_d(self):\n        StandardScaler()\n")
    assert relevant_tests(src) == {"test_a", "test_b", "TestK::test_d"}


@pytest.mark.parametrize("name", list(FILES))
def test_pass_rate(compat_results, name):
    res = compat_results[name]
    passed, total = pass_rate(res)
    assert total > 50, f"only {total} relevant tests found in {name}"
    failing = sorted(t for t, (o, _) in res.items() if o in ("failure", "error"))
    assert passed / total >= TARGET, (f"{name}: {passed}/{total} = {passed / total:.1%} < {TARGET:.0%}; failing:\n"
                                      + "\n".join(failing))


def _main() -> None:  # pragma: no cover - a report for people
    import tempfile

    files = [a for a in sys.argv[1:] if a in FILES] or None
    extra = [a for a in sys.argv[1:] if a not in FILES]
    with tempfile.TemporaryDirectory() as d:
        res = run_suite(Path(d), files=files, extra_args=extra)
    grand_p = grand_t = 0
    for name, r in res.items():
        p, t = pass_rate(r)
        grand_p, grand_t = grand_p + p, grand_t + t
        print(f"{name}: {p}/{t} = {p / max(t, 1):.1%}")
    print(f"all: {grand_p}/{grand_t} = {grand_p / max(grand_t, 1):.1%}")
    for name, r in res.items():
        for t, (o, msg) in sorted(r.items()):
            if o in ("failure", "error"):
                one_line = re.sub(r"\s+", " ", msg)[:300]
                print(f"FAIL {name}::{t} :: {one_line}")


if __name__ == "__main__":
    _main()
