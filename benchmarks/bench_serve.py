"""Load test of a served kernelflow pipeline on a real Triton Inference Server (loopback only).

    PYTHONPATH=python python benchmarks/bench_serve.py --requests 5000

Fits the palmerpenguins pipeline (Preprocessor + a small MLP), saves a bundle, writes a model
repository (python-backend encode step + model step; the onnxruntime backend where the server
has it), starts the server on 127.0.0.1 with free ports and sends ``--requests`` requests per
configuration (protocol x concurrency x batch rows), each thread with its own client. Every
answer is checked against the local pipeline (1e-5): a wrong one counts as an error. Each
configuration stops after ``--requests`` requests or ``--max-seconds``, whichever comes first.
The ceiling is the same pipeline called in process in the same run: ONNX Runtime on the graph
(with and without the host encoding of the DataFrame) and PyTorch (the preprocessing module +
the model). Writes benchmarks/results/serve_<machine>.json (--out to change). Exits 1 on any
error or wrong answer.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def load(client_factory, batches, want, concurrency, requests, max_seconds):
    """Send `requests` requests from `concurrency` threads; latency per request in ms."""
    lat, errors, wrong = [], [], [0]
    lock = threading.Lock()
    counter = [0]
    deadline = time.monotonic() + max_seconds

    def work():
        c = client_factory()
        try:
            while time.monotonic() < deadline:
                with lock:
                    if counter[0] >= requests:
                        return
                    i = counter[0]
                    counter[0] += 1
                arrays, w = batches[i % len(batches)], want[i % len(want)]
                t0 = time.perf_counter()
                try:
                    got = c.infer_arrays(arrays)
                except Exception as e:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(repr(e)[:200])
                    continue
                dt = (time.perf_counter() - t0) * 1e3
                ok = got.shape == w.shape and np.allclose(got, w, rtol=1e-5, atol=1e-5)
                with lock:
                    lat.append(dt)
                    wrong[0] += not ok
        finally:
            c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, lat, errors, wrong[0]


def inprocess(name, fn, batches, repeat_s=3.0, max_calls=5000):
    """Single-thread in-process calls: per-call latency percentiles and throughput."""
    fn(batches[0])
    lat, n = [], 0
    t_end = time.monotonic() + repeat_s
    t0 = time.perf_counter()
    while time.monotonic() < t_end and n < max_calls:
        s = time.perf_counter()
        fn(batches[n % len(batches)])
        lat.append((time.perf_counter() - s) * 1e3)
        n += 1
    return n, time.perf_counter() - t0, lat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000, help="requests per configuration")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="time bound per configuration")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--batch", default="1,256", help="rows per request")
    ap.add_argument("--protocol", default="grpc,http")
    ap.add_argument("--backend", default="auto", help="model step backend (write_model_repository)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    conc = [int(x) for x in args.concurrency.split(",")]
    sizes = [int(x) for x in args.batch.split(",")]
    protocols = args.protocol.split(",")
    if args.requests < 1 or args.max_seconds <= 0 or min(conc) < 1 or min(sizes) < 1 or not set(protocols) <= {"http", "grpc"}:
        ap.error("--requests, --max-seconds, --concurrency and --batch must be positive; protocols http / grpc")

    import torch

    from kernelflow.bench.timing import write_results
    from kernelflow.deploy import OnnxRunner, save_bundle
    from kernelflow.deploy.server import TritonServer, require_server
    from kernelflow.deploy.triton_client import TritonClient
    from kernelflow.deploy.triton_repo import write_model_repository
    from kernelflow.monitor import DriftReference
    from serving.helpers import fit_pipeline, penguins

    inst = require_server()
    df, y, classes = penguins()
    pre, model = fit_pipeline(df, y, len(classes))
    tmp = tempfile.mkdtemp(prefix="kernelflow-bench-serve-")
    bundle = os.path.join(tmp, "bundle")
    save_bundle(bundle, pre, model, classes=classes)
    DriftReference.fit(pre, df).save(os.path.join(bundle, "drift_reference.json"))
    info = write_model_repository(bundle, os.path.join(tmp, "repo"), backend=args.backend, max_batch_size=max(sizes) * 4)
    runner = OnnxRunner(bundle)
    rng = np.random.default_rng(0)
    frames = {b: [df.iloc[rng.integers(0, len(df), b)].reset_index(drop=True) for _ in range(32)] for b in sizes}
    want = {b: [runner.predict(f) for f in frames[b]] for b in sizes}
    rows = []
    from kernelflow.bench.timing import cpu_summary

    cpu = cpu_summary()
    print(f"server: {inst.kind} {inst.binary}; model step backend {info['backend']}; {cpu}")

    # in-process ceilings, single thread, same frames
    prep = pre.to_module().eval()  # the pipeline in PyTorch: the preprocessing module, then the model
    for b in sizes:
        enc = [pre.inputs(f) for f in frames[b]]
        cases = {
            "onnxruntime (encode + graph)": lambda f: runner.predict(f),
            "onnxruntime (graph on encoded blocks)": lambda e: runner.run(e.num, e.cat, e.passthrough),
            "pytorch (encode + module + model)": lambda f: model(prep(*pre.inputs(f)[:2])),
            "pytorch (module + model on encoded blocks)": lambda e: model(prep(e.num, e.cat)),
        }
        for name, fn in cases.items():
            src = enc if "encoded" in name else frames[b]
            with torch.inference_mode():
                n, secs, lat = inprocess(name, fn, src)
            rows.append({"impl": name, "where": "in process", "batch": b, "concurrency": 1, "requests": n,
                         "seconds": round(secs, 3), "req_per_s": round(n / secs, 1), "rows_per_s": round(n * b / secs, 1),
                         "p50_ms": round(pct(lat, 50), 4), "p99_ms": round(pct(lat, 99), 4), "errors": 0, "wrong": 0})
            print(f"  {name:45s} batch {b:4d}: {n / secs:9.1f} calls/s  p50 {pct(lat, 50):.3f} ms")

    failed = False
    with TritonServer(os.path.join(tmp, "repo"), install=inst) as srv:
        for proto in protocols:
            url = f"{proto}://{srv.http_url if proto == 'http' else srv.grpc_url}"
            for b in sizes:
                probe = TritonClient(url)
                arrays = [probe.tensors(f) for f in frames[b]]
                probe.close()
                for c in conc:
                    secs, lat, errors, wrong = load(lambda: TritonClient(url, timeout=60), arrays, want[b], c,
                                                    args.requests, args.max_seconds)
                    n = len(lat)
                    r = {"impl": f"triton {proto}", "where": "loopback", "backend": info["backend"], "batch": b,
                         "concurrency": c, "requests": n, "seconds": round(secs, 3),
                         "req_per_s": round(n / secs, 1), "rows_per_s": round(n * b / secs, 1),
                         "p50_ms": round(pct(lat, 50), 3), "p99_ms": round(pct(lat, 99), 3),
                         "errors": len(errors), "wrong": wrong, "error_samples": errors[:3],
                         "complete": n + len(errors) >= args.requests}
                    ceil = next(x for x in rows if x["where"] == "in process" and x["batch"] == b
                                and x["impl"] == "onnxruntime (encode + graph)")
                    r["rows_per_s_vs_inprocess_ort"] = round(r["rows_per_s"] / ceil["rows_per_s"], 4)
                    rows.append(r)
                    failed |= bool(errors) or wrong > 0
                    print(f"  triton {proto:4s} batch {b:4d} conc {c:3d}: {n:6d} req in {secs:6.1f} s = "
                          f"{n / secs:8.1f} req/s, {n * b / secs:9.1f} rows/s, p50 {pct(lat, 50):7.2f} ms, "
                          f"p99 {pct(lat, 99):7.2f} ms, errors {len(errors)}, wrong {wrong}")

    machine = f"{platform.machine()}-{os.cpu_count()}core"
    out = args.out or os.path.join(HERE, "results", f"serve_{machine}.json")
    notes = (f"CPU {cpu}, shared with other work "
             "(the server, its python-backend processes and the load threads all run on these cores, so loopback "
             "numbers are a floor for a dedicated machine). Server: "
             f"{inst.kind} tritonserver; model step backend {info['backend']}; encode step python backend. "
             "In-process rows: one thread, same frames, the local pipeline end to end (ceiling). No GPU was available "
             "for this run, so the tensorrt_plan variant was not served.")
    doc = write_results(out, "serve", rows, notes=notes)
    doc["params"] = {"requests": args.requests, "max_seconds": args.max_seconds, "concurrency": conc, "batch": sizes,
                     "protocols": protocols, "server": inst.kind}
    import json

    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
