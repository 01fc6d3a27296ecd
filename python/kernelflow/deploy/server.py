"""Start and stop a real Triton Inference Server on a model repository.

The server binary is the ``tritonserver`` on PATH when there is one (an NGC container, with every
backend under /opt/tritonserver/backends), otherwise the one that the ``nvidia-pytriton`` package
ships (``pip install kernelflow[serve]``: Triton 2.51 with the python backend only). The pytriton
build needs two things that its own launcher does and a bare exec does not: the python-backend stub
matching the running interpreter copied next to the backend, and ``LD_LIBRARY_PATH`` holding the
package's bundled libraries and this interpreter's ``sysconfig`` LIBDIR (else the stub loads the
system libpython). The stub then embeds this interpreter, with this environment's site-packages,
so the python-backend models see the same numpy / onnxruntime as the caller.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class ServerError(RuntimeError):
    """The server could not start, or stopped: the message carries the reason and the log's tail."""


@dataclass(frozen=True)
class ServerInstall:
    """A tritonserver binary and what it needs to run."""

    binary: Path
    kind: str  # "path" (tritonserver on PATH) or "pytriton" (the nvidia-pytriton package's build)
    backends: frozenset  # backend names available to it ("python", "onnxruntime", "tensorrt", ...)
    backend_root: Path | None = None  # pytriton: the package's backends folder (copied per Python version)
    lib_dirs: tuple = field(default_factory=tuple)  # prepended to LD_LIBRARY_PATH
    stub: Path | None = None  # pytriton: the python-backend stub for this interpreter


def _pytriton_install() -> ServerInstall | None:
    spec = importlib.util.find_spec("pytriton")  # located, not imported: importing it starts nothing but is slow
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    dist = root / "tritonserver"
    binary = dist / "bin" / "tritonserver"
    if not binary.is_file():
        return None
    libs = root.parent / "nvidia_pytriton.libs"
    if not libs.is_dir():  # an editable install keeps them here
        libs = dist / "external_libs"
    stub = dist / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / "triton_python_backend_stub"
    backends = frozenset(p.name for p in (dist / "backends").iterdir() if p.is_dir())
    return ServerInstall(binary, "pytriton", backends, dist / "backends", (str(libs),), stub if stub.is_file() else None)


def _path_install() -> ServerInstall | None:
    exe = shutil.which("tritonserver")
    if exe is None:
        return None
    exe = Path(exe).resolve()
    root = exe.parent.parent / "backends"  # /opt/tritonserver/bin/tritonserver -> /opt/tritonserver/backends
    backends = frozenset(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else frozenset()
    return ServerInstall(exe, "path", backends)


def find_server() -> ServerInstall | None:
    """The Triton server `kernelflow serve` would start here: PATH first, then nvidia-pytriton's."""
    return _path_install() or _pytriton_install()


def require_server() -> ServerInstall:
    inst = find_server()
    if inst is None:
        raise ServerError("no Triton Inference Server found: put `tritonserver` on PATH (an NGC tritonserver "
                          "container) or `pip install kernelflow[serve]` (nvidia-pytriton's build; glibc >= 2.35, numpy<2)")
    if inst.kind == "pytriton" and inst.stub is None:
        raise ServerError(f"nvidia-pytriton ships no python-backend stub for Python "
                          f"{sys.version_info[0]}.{sys.version_info[1]}")
    return inst


def free_ports(n: int, host: str = "127.0.0.1", exclude=()) -> list[int]:
    """n distinct TCP ports that nothing listens on now (the OS picks them), none of them in exclude.

    Every socket stays bound until all n are picked: ports taken one at a time can repeat, since the OS
    may hand a just-closed ephemeral port out again."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
            port = s.getsockname()[1]
            if port not in exclude:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on now (the OS picks it)."""
    return free_ports(1, host)[0]


def _check_port(host: str, port: int, what: str) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"{what} must be an int in 1..65535, got {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the server binds: closed connections in TIME_WAIT do not make a port busy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ServerError(f"{what} {port} on {host} is not free ({e.strerror}); pick another port") from None


def _prepare_backends(inst: ServerInstall, workdir: Path) -> Path:
    """pytriton: a backends folder with the stub for this interpreter (copied, as pytriton does)."""
    dst = workdir / "backends"
    shutil.copytree(inst.backend_root, dst)
    shutil.copy2(inst.stub, dst / "python" / "triton_python_backend_stub")
    return dst


def server_env(inst: ServerInstall) -> dict:
    """Environment for the server process (see the module docstring for why)."""
    env = os.environ.copy()
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    parts = [*inst.lib_dirs, libdir, env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in parts if p)
    # the stub embeds the `python3` it finds on PATH's environment: make that this one
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


class TritonServer:
    """A tritonserver process serving ``repository`` on ``host`` (loopback by default).

    Ports left as None are chosen free. ``start()`` returns once the server reports ready (or
    raises ``ServerError`` with the reason: a port in use, a model that failed to load, the
    process exiting). Use as a context manager to stop it on exit.
    """

    def __init__(self, repository, *, host: str = "127.0.0.1", http_port: int | None = None,
                 grpc_port: int | None = None, metrics_port: int | None = None, log_verbose: int = 0,
                 exit_timeout: int = 10, extra_args=(), install: ServerInstall | None = None):
        self.repository = Path(repository).resolve()
        if not self.repository.is_dir():
            raise ValueError(f"repository must be a model-repository folder, got {str(repository)!r} (not a folder)")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an address string, got {host!r}")
        self.host = host
        given = [http_port, grpc_port, metrics_port]
        picked = iter(free_ports(sum(not p for p in given), host, exclude={p for p in given if p}))
        ports = [p or next(picked) for p in given]
        self.http_port, self.grpc_port, self.metrics_port = ports
        if len(set(ports)) != 3:
            raise ValueError(f"http_port, grpc_port and metrics_port must differ, got {ports}")
        self.log_verbose = int(log_verbose)
        self.exit_timeout = int(exit_timeout)
        self.extra_args = list(extra_args)
        self.install = install
        self.proc: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self.log_path: Path | None = None

    # ------------------------------------------------------------------ endpoints
    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    # ------------------------------------------------------------------ lifecycle
    def command(self, backend_dir: Path | None) -> list[str]:
        inst = self.install
        args = [str(inst.binary), f"--model-repository={self.repository}",
                f"--http-address={self.host}", f"--http-port={self.http_port}",
                f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
                f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
                "--allow-gpu-metrics=false", f"--log-verbose={self.log_verbose}",
                f"--exit-timeout-secs={self.exit_timeout}", "--exit-on-error=true", "--strict-readiness=true",
                # python-backend shared memory: a name per server, so two servers on one host never collide
                f"--backend-config=python,shm-region-prefix-name=kf{os.getpid()}_{self.http_port}_"]
        if backend_dir is not None:
            args.append(f"--backend-directory={backend_dir}")
        return args + self.extra_args

    def start(self, timeout: float = 120.0) -> "TritonServer":
        if self.proc is not None and self.proc.poll() is None:
            raise ServerError("server is already running")
        if self.install is None:
            self.install = require_server()
        for port, what in ((self.http_port, "http_port"), (self.grpc_port, "grpc_port"), (self.metrics_port, "metrics_port")):
            _check_port(self.host, port, what)
        self._workdir = Path(tempfile.mkdtemp(prefix="kernelflow-triton-"))
        backend_dir = _prepare_backends(self.install, self._workdir) if self.install.kind == "pytriton" else None
        self.log_path = self._workdir / "tritonserver.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(backend_dir), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=server_env(self.install),
                                         start_new_session=True)  # its own group: Ctrl-C reaches us, we stop it
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"tritonserver exited with code {self.proc.returncode} before it was ready:\n"
                                  + self.errors())
            if self.is_ready():
                return
            time.sleep(0.2)
        raise ServerError(f"tritonserver was not ready after {timeout:.0f} s:\n" + self.errors())

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def errors(self, lines: int = 30) -> str:
        """The log's error lines (E...) and its tail: why a start failed."""
        text = self.log().splitlines()
        errs = [ln for ln in text if ln.startswith("E") or "error" in ln.lower()]
        tail = text[-lines:]
        return "\n".join(dict.fromkeys(errs[-lines:] + tail))

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait for the clean shutdown, then SIGKILL the server's process group (its stubs)."""
        p = self.proc
        if p is None:
            return None
        timeout = self.exit_timeout + 10 if timeout is None else timeout
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        # python-backend stubs exit with the server; a stub left behind by a killed server goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        if self._workdir is not None:
            keep = os.environ.get("KERNELFLOW_KEEP_SERVER_LOG")
            if not keep:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self.log_path = None
        return p.returncode

    def kill(self) -> None:
        """SIGKILL the server at once (tests of a server dying mid-load)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> "TritonServer":
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"TritonServer({str(self.repository)!r}, http={self.http_url}, grpc={self.grpc_url}, {state})"
