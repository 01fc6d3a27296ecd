"""Every fenced code block of README.md runs as written, so the README cannot drift from the code.

Blocks are found by parsing README.md at collection time, so a block added anywhere is picked up
with no change here:
- ```python blocks run in order in ONE namespace (a later block may use what an earlier one
  made, as a reader would), which starts from PREAMBLE: the data the snippets name (df, X,
  X_torch, x, model, teacher, student, opt, path, ddf, ...), real objects, small sizes.
- ```bash / ```sh / ```console blocks: each command (split on newlines and ``&&``, comments
  dropped) runs in a shell from the repository root with ``kernelflow`` meaning
  ``python -m kernelflow`` of this tree, unless it matches one of EXCLUDED (each with the reason).
- ```text, ```json, unlabelled and other blocks are output samples or diagrams: not run.
- A block preceded by the line ``<!-- readme-test: skip REASON -->`` is not run (the reason is
  shown as the skip reason); use it for blocks that need a GPU or a network.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUN_LANGS = {"python", "py", "bash", "sh", "shell", "console"}
# commands not run, and why (checked with re.search against the command)
EXCLUDED = [
    (r"\bpip\s+install\b", "installs packages (the test environment already has them)"),
    (r"-m\s+pytest\s+tests(\s|$)", "runs the whole test suite (CI runs it)"),
]

PREAMBLE = '''
import os, tempfile
import numpy as np, pandas as pd, torch, pyarrow as pa, pyarrow.parquet
import kernelflow
from palmerpenguins import load_penguins

_tmp = tempfile.mkdtemp(prefix="kf_readme_")
os.chdir(_tmp)  # files the snippets write (pre.safetensors, ...) land in a scratch directory
torch.manual_seed(0)
_rng = np.random.default_rng(0)
df = load_penguins().rename(columns={"island": "city"})     # numeric + string columns with NaN
X = _rng.normal(size=(300, 4))
X_torch = torch.from_numpy(X)
F = 8
x = torch.randn(64, F)                                      # a batch: distiller.step(x, y), ops.column_stats(x)
m, s, a, b = x.mean(0).numpy(), x.std(0).numpy(), np.full(F, -2.0), np.full(F, 2.0)
path = os.path.join(_tmp, "table.parquet")
pyarrow.parquet.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=100)
import dask.dataframe as _dd
ddf = _dd.from_pandas(df, npartitions=3)
local_shard = df
import torch.distributed as _dist
if not _dist.is_initialized():  # a real one-process group, as under torchrun with one rank
    _dist.init_process_group("gloo", init_method="file://" + os.path.join(_tmp, "pg"), rank=0, world_size=1)
_n = 512
X_train = torch.randn(_n, 8); y_train = (X_train[:, 0] > 0).long()
X_val = torch.randn(128, 8); y_val = (X_val[:, 0] > 0).long()
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
teacher = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
student = torch.nn.Sequential(torch.nn.Linear(8, 3))
opt = torch.optim.SGD(student.parameters(), lr=0.1)
y = torch.randint(0, 3, (64,))
'''


def _blocks() -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, skip reason) of every fenced block."""
    out, lines = [], README.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        skip = None
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0:
            sm = re.match(r"^\s*<!--\s*readme-test:\s*skip\s*(.*?)\s*-->\s*$", lines[j])
            if sm:
                skip = sm.group(1) or "marked skip in README.md"
        body, k = [], i + 1
        while k < len(lines) and not lines[k].strip().startswith(fence[0] * len(fence)):
            body.append(lines[k][len(indent):] if lines[k].startswith(indent) else lines[k])
            k += 1
        out.append((i + 1, lang, textwrap.dedent("\n".join(body)), skip))
        i = k + 1
    return out


BLOCKS = _blocks()
PY = [b for b in BLOCKS if b[1] in ("python", "py")]
SH = [b for b in BLOCKS if b[1] in RUN_LANGS - {"python", "py"}]


def test_readme_has_blocks():
    assert PY, "README.md has no python blocks: the parser or the README is broken"
    assert all(b[1] in RUN_LANGS or b[1] in ("", "text", "json", "toml", "yaml", "ini", "cmake", "cpp", "c", "cuda")
               for b in BLOCKS), "a README block uses a language this test does not know: add it to RUN_LANGS or the skip list"


@pytest.fixture(scope="module")
def namespace():
    cwd = os.getcwd()
    ns: dict = {"__name__": "__readme__"}
    exec(compile(PREAMBLE, "<readme preamble>", "exec"), ns)
    yield ns
    os.chdir(cwd)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize("block", PY, ids=[f"README.md:{b[0]}" for b in PY])
def test_python_block(block, namespace):
    line, _, code, skip = block
    if skip:
        pytest.skip(skip)
    # errors point at README.md lines
    exec(compile("\n" * line + code, str(README), "exec"), namespace)


def _commands(code: str) -> list[str]:
    cmds = []
    for raw in code.replace("\\\n", " ").splitlines():
        line = raw.split(" #")[0].strip() if not raw.lstrip().startswith("#") else ""
        line = re.sub(r"^\$\s+", "", line)
        cmds += [c.strip() for c in line.split("&&") if c.strip()]
    return cmds


SH_CMDS = [(b[0], c, b[3]) for b in SH for c in _commands(b[2])]


@pytest.mark.parametrize("cmd", SH_CMDS, ids=[f"README.md:{c[0]}:{c[1][:40]}" for c in SH_CMDS])
def test_shell_command(cmd, tmp_path):
    line, command, skip = cmd
    if skip:
        pytest.skip(skip)
    for pattern, reason in EXCLUDED:
        if re.search(pattern, command):
            pytest.skip(f"not run: {reason}")
    py = shlex.quote(sys.executable)
    command = re.sub(r"(^|[;|]\s*)kernelflow(\s|$)", rf"\1{py} -m kernelflow\2", command)
    command = re.sub(r"(^|[;|]\s*)python(\s)", rf"\1{py}\2", command)
    import kernelflow  # the commands use the kernelflow this process imports (installed or the tree)

    pkg_parent = str(Path(kernelflow.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_parent, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README.md:{line}: `{command}` exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
