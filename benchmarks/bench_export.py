"""Latency of the exported pipeline (preprocessing + MLP in one ONNX graph) in ONNX Runtime,
against the same pipeline in PyTorch eager (kernelflow.nn.Preprocess + the model) and against
scikit-learn's ColumnTransformer + the model, at batch 1 and batch 4096, same data, one run.

Two timings per path: "graph" (from the prepared num / cat tensors: what a server runs once
the request is decoded) and "table" (from a pandas DataFrame batch, the category strings
encoded on the host). The achieved GB/s (input + output bytes) and GFLOP/s (the MLP's FLOPs)
are reported against a memory-copy and a float32 matmul ceiling measured in the same run.

    python benchmarks/bench_export.py --out benchmarks/results/export_cpu.json
    python benchmarks/bench_export.py --tensorrt --out benchmarks/results/export_tensorrt.json   (GPU + TensorRT)

``--tensorrt`` builds fp32, fp16 and int8-QDQ engines of the same pipeline, checks each against the
PyTorch module (fp16 within 2e-2, int8 within 3x the quantized model's own error) and times them
with CUDA events against PyTorch eager on the GPU, at the same batches.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import warnings

import numpy as np
import torch

import kernelflow
from kernelflow.bench import cpu_time_ms, record, write_results
from kernelflow.bench.data import make_table
from kernelflow.bench.timing import cpu_summary
from kernelflow.deploy import OnnxRunner, export_onnx


def mlp(width: int, hidden: int, classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, classes)).eval()


def ceilings() -> dict:
    a = np.random.default_rng(0).random(32 << 20, dtype=np.float64)  # 256 MB, past every cache
    b = np.empty_like(a)
    ms = cpu_time_ms(lambda: np.copyto(b, a), warmup=1, repeat=5)
    n = 2048
    x, y = torch.randn(n, n), torch.randn(n, n)
    mm = cpu_time_ms(lambda: x @ y, warmup=1, repeat=5)
    return {"copy_gbps": round(2 * a.nbytes / (ms * 1e-3) / 1e9, 2), "matmul_gflops_fp32": round(2 * n**3 / (mm * 1e-3) / 1e9, 1)}


def run_tensorrt(args, df, pre, model, q, tmp) -> tuple[list[dict], dict]:
    from kernelflow.bench import cuda_time_ms, copy_bandwidth_gbps, matmul_tflops
    from kernelflow.deploy import TensorRTRunner, build_engine

    W = pre.n_features_out_
    dev_model, dev_q, module = model.cuda(), q.cuda(), pre.to_module().cuda()
    ceil = {"copy_gbps": round(copy_bandwidth_gbps(), 1), "matmul_tflops_bf16": round(matmul_tflops(), 1)}
    inp = pre.inputs(df.sample(max(args.batches), random_state=0, replace=True))
    num, cat = inp.num.cuda(), inp.cat.cuda()
    with torch.no_grad():
        ref = dev_model(module(num, cat)).float()
        ref_q = dev_q(module(num, cat)).float()
    own_q = float((ref_q - ref).abs().max())
    scale = max(1.0, float(ref.abs().max()))
    engines = {}
    for kind, m, dt in (("fp32", model, "float32"), ("fp16", model, "float16"), ("int8_qdq", q, "float32")):
        g = export_onnx(m, os.path.join(tmp, f"trt_{kind}.onnx"), preprocessor=pre, dtype=dt)
        t0 = time.perf_counter()
        plan = build_engine(g, os.path.join(tmp, f"{kind}.plan"), min_batch=1, opt_batch=max(args.batches),
                            max_batch=max(args.batches), workspace_gb=4, timing_cache=os.path.join(tmp, "timing.cache"))
        engines[kind] = (TensorRTRunner(plan), time.perf_counter() - t0)
    rows = []
    for n in args.batches:
        a = [(num[:n], cat[:n])]  # small inputs: L2 rotation does not matter at these sizes
        with torch.no_grad():
            eager = cuda_time_ms(lambda x, c: dev_model(module(x, c)), a)
        rows.append(record("pipeline_gpu", "torch_eager", eager, shape=[n, W], input="graph"))
        for kind, (r, build_s) in engines.items():
            out = r(num[:n], cat[:n]).float()
            err = float((out - ref[:n]).abs().max()) / scale
            tol = 1e-4 if kind == "fp32" else (2e-2 if kind == "fp16" else 3 * own_q / scale)
            ms = cuda_time_ms(lambda x, c, r=r: r(x, c), a)
            rows.append(record("pipeline_gpu", f"tensorrt_{kind}", ms, shape=[n, W], input="graph",
                               speedup_vs_torch_eager=round(eager / ms, 2), max_rel_err_vs_module=err,
                               tolerance=tol, correct=err <= tol, build_s=round(build_s, 1)))
            print(f"batch {n} tensorrt_{kind}: {ms:.4f} ms (x{eager / ms:.2f} vs eager), err {err:.2e} (tol {tol:.1e})")
    return rows, ceil


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-rows", type=int, default=20000)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4096])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=30, help="timed repeats per batch-1 measurement (median)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--tensorrt", action="store_true", help="GPU: TensorRT engines vs PyTorch eager")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    df = make_table(args.fit_rows, n_levels=20)
    pre = kernelflow.Preprocessor(add_indicator=True, nonlinear="yeo-johnson").fit(df)
    W = pre.n_features_out_
    model = mlp(W, args.hidden, 4)
    ct = pre.to_sklearn().fit(df)
    module = pre.to_module()
    X = module(*pre.inputs(df[:4096]))
    cal = [X[i:i + 512] for i in range(0, len(X), 512)]
    q, _ = kernelflow.quantize(model, mode="w8a8", calibration=cal, static=True)
    tmp = tempfile.mkdtemp()
    t0 = time.perf_counter()
    path = export_onnx(model, os.path.join(tmp, "pipe.onnx"), preprocessor=pre)
    export_s = time.perf_counter() - t0
    qpath = export_onnx(q, os.path.join(tmp, "pipe_int8.onnx"), preprocessor=pre)
    if args.tensorrt:
        rows, ceil = run_tensorrt(args, df, pre, model, q, tmp)
        notes = f"TensorRT engines (strongly typed) of the {W}-feature pipeline + MLP; one profile 1..{max(args.batches)}"
        doc = write_results(args.out, "export_pipeline_tensorrt", rows, ceil, notes) if args.out else None
        if not all(r.get("correct", True) for r in rows):
            raise SystemExit("a TensorRT engine disagrees with the PyTorch module")
        return doc
    paths = {"onnxruntime": path, "onnxruntime_int8_qdq": qpath}
    ceil = lscpu_info = None
    ceil = ceilings()
    lscpu_info = cpu_summary()
    flops_per_row = 2 * (W * args.hidden + args.hidden * args.hidden + args.hidden * 4)
    rows = []
    for n in args.batches:
        batches = [df.sample(n, random_state=i, replace=n > len(df)).reset_index(drop=True) for i in range(4)]
        inps = [pre.inputs(b) for b in batches]
        rep = args.repeat if n <= 64 else max(5, args.repeat // 3)
        nbytes = n * (len(pre.numeric_columns_) * 4 + len(pre.categorical_columns_) * 8 + 4 * 4)

        def torch_graph(i):
            with torch.no_grad():
                return model(module(i.num, i.cat))

        def torch_table(b):
            with torch.no_grad():
                return model(module(*pre.inputs(b)))

        def sk_table(b):
            with torch.no_grad():
                return model(torch.from_numpy(np.ascontiguousarray(ct.transform(b), dtype=np.float32)))

        def kf_table(b):
            with torch.no_grad():
                return model(torch.from_numpy(pre.transform(b)))

        t_end = time.perf_counter() + 2.0  # settle: the first path timed after a batch change ran slow
        while time.perf_counter() < t_end:
            torch_table(batches[0]), torch_graph(inps[0]), kf_table(batches[0])
        times = {
            ("torch_eager", "table"): cpu_time_ms(torch_table, [(b,) for b in batches], warmup=3, repeat=rep),
            ("torch_eager", "graph"): cpu_time_ms(torch_graph, [(i,) for i in inps], warmup=3, repeat=rep),
            ("sklearn_columntransformer+torch", "table"): cpu_time_ms(sk_table, [(b,) for b in batches], warmup=2,
                                                                     repeat=max(5, rep // 2)),
            ("kernelflow_transform+torch", "table"): cpu_time_ms(kf_table, [(b,) for b in batches], warmup=3, repeat=rep),
        }
        # ONNX Runtime's threads spin after each run and would slow the torch paths down in the same
        # process: its sessions exist only while they are timed
        runners = {k: OnnxRunner(v, preprocessor=pre) for k, v in paths.items()}
        for name, r in runners.items():
            times[(name, "graph")] = cpu_time_ms(lambda i, r=r: r.run(*i), [(i,) for i in inps], warmup=3, repeat=rep)
            times[(name, "table")] = cpu_time_ms(lambda b, r=r: r.predict(b), [(b,) for b in batches], warmup=3, repeat=rep)
        # correctness of what was timed
        ref = torch_graph(inps[0]).numpy()
        err = float(np.max(np.abs(runners["onnxruntime"].run(*inps[0]) - ref)) / max(1.0, float(np.abs(ref).max())))
        del runners, r
        gc.collect()
        for (impl, kind), ms in times.items():
            base = times[("sklearn_columntransformer+torch", "table")] if kind == "table" else times[("torch_eager", "graph")]
            rows.append(record("pipeline", impl, ms, shape=[n, W], dtype="float32", nbytes=nbytes,
                               flops=flops_per_row * n, input=kind,
                               speedup_vs_sklearn=round(times[("sklearn_columntransformer+torch", "table")] / ms, 2)
                               if kind == "table" else None,
                               speedup_vs_torch_eager=round(times[("torch_eager", kind)] / ms, 2),
                               speedup_vs_baseline=round(base / ms, 2),
                               gflops=round(flops_per_row * n / (ms * 1e-3) / 1e9, 2),
                               frac_matmul_fp32=round(flops_per_row * n / (ms * 1e-3) / 1e9 / ceil["matmul_gflops_fp32"], 4),
                               max_rel_diff_vs_torch=err if impl == "onnxruntime" else None))
        print(f"batch {n}:")
        for (impl, kind), ms in sorted(times.items(), key=lambda kv: (kv[0][1], kv[1])):
            print(f"  {kind:<5} {impl:<34} {ms:9.4f} ms   x{times[('torch_eager', kind)] / ms:6.2f} vs torch eager"
                  + (f"   x{times[('sklearn_columntransformer+torch', 'table')] / ms:6.2f} vs sklearn" if kind == "table" else ""))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    notes = (f"{lscpu_info}. Shared machine (2 cores, other work running; load average {load} at the end): "
             f"ratios within one run are the result, "
             f"absolute times are not. Table: {len(pre.numeric_columns_)} numeric (mean imputation, Yeo-Johnson, "
             f"standard scaling, indicators) + {len(pre.categorical_columns_)} string columns -> {W} features; MLP {W}-{args.hidden}-"
             f"{args.hidden}-4. ONNX Runtime at its OnnxRunner level (ALL float, BASIC int8); export took {export_s:.1f} s. "
             "'graph' starts from num/cat tensors, 'table' from a DataFrame (strings encoded on the host).")
    doc = write_results(args.out, "export_pipeline_cpu", rows, ceil, notes) if args.out else None
    print(f"ceilings: {ceil}\n{notes}")
    return doc


if __name__ == "__main__":
    main()
