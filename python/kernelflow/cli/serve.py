"""``kernelflow serve REPO_OR_BUNDLE``: a real Triton Inference Server on a model repository
(or on a bundle, written into a temporary repository first), until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

ORDER = 55


def cmd_serve(args: argparse.Namespace) -> int:
    from kernelflow.deploy.server import TritonServer, require_server
    from kernelflow.deploy.triton_repo import repository_models, write_model_repository

    inst = require_server()
    tmp = None
    repo = args.path
    if os.path.isfile(os.path.join(args.path, "manifest.json")):  # a bundle: serve it as a repository
        tmp = tempfile.mkdtemp(prefix="kernelflow-repo-")
        repo = os.path.join(tmp, "models")
        backend = args.backend
        if backend == "auto" and "onnxruntime" not in inst.backends:
            backend = "python"
        write_model_repository(args.path, repo, name=args.name, backend=backend, max_batch_size=args.max_batch_size,
                               instances=args.instances)
    elif not repository_models(repo):
        raise ValueError(f"{args.path}: neither a bundle (manifest.json) nor a model repository (model folders "
                         "with config.pbtxt)")
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    srv = TritonServer(repo, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                       metrics_port=args.metrics_port, install=inst, log_verbose=args.log_verbose)
    try:
        srv.start(timeout=args.timeout)
        print(f"Triton Inference Server ({inst.kind}: {inst.binary}) ready, serving {', '.join(repository_models(repo))}")
        print(f"  HTTP     http://{srv.http_url}")
        print(f"  gRPC     grpc://{srv.grpc_url}")
        print(f"  metrics  {srv.metrics_url}")
        print("Ctrl-C or SIGTERM stops it.", flush=True)
        while stop["signal"] is None and srv.proc.poll() is None:
            time.sleep(0.2)
        if stop["signal"] is None:
            print(f"kernelflow serve: the server exited with code {srv.proc.returncode}:\n{srv.errors()}", file=sys.stderr)
            return 1
        print(f"stopping ({signal.Signals(stop['signal']).name})", flush=True)
        code = srv.stop()
        print(f"stopped (server exit code {code})", flush=True)
        return 0
    finally:
        srv.stop()
        for s, h in old.items():
            signal.signal(s, h)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _check(args) -> str | None:
    if not os.path.isdir(args.path):
        return f"{args.path}: not a folder (a model repository or a bundle)"
    for name in ("http_port", "grpc_port", "metrics_port"):
        v = getattr(args, name)
        if v is not None and not 0 < v < 65536:
            return f"--{name.replace('_', '-')} must be in 1..65535"
    if args.max_batch_size < 1 or args.instances < 1 or args.timeout <= 0:
        return "--max-batch-size, --instances and --timeout must be positive"
    return None


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a model repository or a bundle on a real Triton Inference Server")
    p.add_argument("path", help="a Triton model repository (write_model_repository) or a bundle folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--http-port", type=int, default=None, help="default: a free port")
    p.add_argument("--grpc-port", type=int, default=None, help="default: a free port")
    p.add_argument("--metrics-port", type=int, default=None, help="default: a free port")
    p.add_argument("--name", default="kernelflow", help="pipeline name, for a bundle")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "python"],
                   help="model step backend, for a bundle")
    p.add_argument("--max-batch-size", type=int, default=4096, help="for a bundle")
    p.add_argument("--instances", type=int, default=1, help="model-step instances, for a bundle")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the server to be ready")
    p.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose")
    p.set_defaults(func=cmd_serve, check=_check)
