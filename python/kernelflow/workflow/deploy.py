"""The deployment stages: the bundle and its ONNX graph (int8 student with the preprocessing
inside), ONNX Runtime parity against torch on test rows and the graph's own test metrics, a
TensorRT engine where TensorRT works, the Triton model repository and, on request, the server.

They use ``kernelflow.deploy``; where a piece of it is not available here, the stage reports
"skipped: <reason>" instead of pretending to succeed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import numpy as np
import torch

from kernelflow.workflow import evaluate as E
from kernelflow.workflow.models import TabularModel
from kernelflow.workflow.stages import Ctx, Skipped, deployable


def _deploy_api(*names: str):
    try:
        dep = importlib.import_module("kernelflow.deploy")
    except ImportError as e:
        raise Skipped(f"kernelflow.deploy is not available in this build ({e})") from None
    missing = [n for n in names if not hasattr(dep, n)]
    if missing:
        raise Skipped(f"kernelflow.deploy has no {', '.join(missing)} in this build")
    return dep


def _deploy_model(ctx: Ctx) -> tuple[str, torch.nn.Module]:
    for name in ("student_int8", "student", "teacher"):
        if name in ctx.models:
            return name, deployable(ctx, name)
    raise Skipped("no trained model")


def stage_export(ctx: Ctx) -> dict:
    dep = _deploy_api("save_bundle", "load_bundle", "OnnxRunner")
    for lib in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(lib) is None:
            raise Skipped(f"{lib} is not installed (pip install 'kernelflow[onnx]')")
    name, net = _deploy_model(ctx)
    t = ctx.table
    bundle_dir = os.path.join(ctx.run_dir, "bundle")
    dep.save_bundle(bundle_dir, ctx.pre, net.cpu().eval(), task=t.task, classes=t.classes)
    net.to(ctx.device)
    bundle = dep.load_bundle(bundle_dir)  # verifies the manifest's hashes
    onnx_path = str(bundle.onnx_path)
    runner = bundle.runner()
    ctx.extra["onnx_runner"] = runner
    # parity on test rows: ONNX Runtime against the same model in torch (CPU, float32)
    blocks = tuple(None if b is None else b.cpu() for b in ctx.data["blocks_test"])
    k = min(ctx.cfg.export.parity_rows, blocks[0].shape[0])
    sub = tuple(None if b is None else b[:k].numpy() for b in blocks)
    got = np.asarray(runner.run(*sub), dtype=np.float64)
    ref_model = TabularModel(ctx.pre.to_module(), net.cpu()).eval()
    with torch.inference_mode():
        ref = ref_model(*(None if b is None else torch.from_numpy(b) for b in sub)).double().numpy()
    net.to(ctx.device)
    got = got.reshape(ref.shape)
    abs_diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    tol = 1e-4 * max(1.0, scale)  # a float graph: float32 rounding
    own = None
    if name == "student_int8":
        # an int8 graph rounds activations in its QuantizeLinear where the kernel rounds in its own
        # order: a value on a rounding boundary moves one step. Allowed: half the int8 model's own
        # error against the float student (the export tests' criterion).
        with torch.inference_mode():
            flt = TabularModel(ctx.pre.to_module(), deployable(ctx, "student").cpu()).eval()(
                *(None if b is None else torch.from_numpy(b) for b in sub)).double().numpy()
        ctx.models["student"].to(ctx.device)
        own = float(np.max(np.abs(ref - flt))) if ref.size else 0.0
        tol = max(tol, 0.5 * own)
    ok = abs_diff <= tol
    agree = float(np.mean(got.argmax(1) == ref.argmax(1))) if t.task == "classification" and ref.size else None
    # the exported graph's own metrics on the whole test split
    full = tuple(None if b is None else b.numpy() for b in blocks)
    out = torch.from_numpy(np.asarray(runner.run(*full), dtype=np.float32))
    y = ctx.data["y_test"].cpu().numpy()
    pred = E.probabilities(out, ctx.n_classes) if t.task == "classification" else out.reshape(-1).numpy()
    row = {"metrics": E.scores(t.task, y, pred), "parameters": ctx.results.get(name, {}).get("parameters"),
           "size_bytes": os.path.getsize(onnx_path), "device": "cpu (ONNX Runtime)", "model": name}

    def rows(n_rows):
        n_rows = min(n_rows, full[0].shape[0])
        s = tuple(None if b is None else np.ascontiguousarray(b[:n_rows]) for b in full)
        return lambda: runner.run(*s)
    ec = ctx.cfg.evaluate
    row.update(E.speed(rows, ec.latency_batch, min(ec.throughput_batch, full[0].shape[0]), ec.repeats,
                       torch.device("cpu")))
    ctx.results["onnx"] = row
    # the client path: strings encoded by the bundle's own preprocessor, then the graph
    df = ctx.table.X.iloc[ctx.split.test[:k]]
    via_df = np.asarray(runner.predict(df), dtype=np.float64).reshape(ref.shape)
    df_diff = float(np.max(np.abs(via_df - got))) if ref.size else 0.0
    detail = {"bundle": bundle_dir, "onnx": onnx_path, "model": name, "parity_rows": k, "max_abs_diff": abs_diff,
              "tolerance": tol, "int8_vs_float_max_abs_diff": own, "label_agreement": agree, "parity_ok": ok and df_diff == 0.0, "predict_df_max_abs_diff": df_diff,
              "graph_ops": sorted(runner.op_types), "bundle_files": sorted(bundle.manifest["files"])}
    if df_diff != 0.0:
        raise RuntimeError(f"OnnxRunner.predict(table) differs from run(blocks) by {df_diff:.3g}")
    if not ok:
        raise RuntimeError(f"ONNX Runtime output differs from torch by {abs_diff:.3g} (> {tol:.3g}) on {k} test rows")
    detail["tensorrt"] = _tensorrt(ctx, dep, onnx_path, sub, ref)
    return detail


def _tensorrt(ctx: Ctx, dep, onnx_path: str, sub: tuple, ref: np.ndarray) -> dict | str:
    """A TensorRT engine of the graph (``model.plan`` in the bundle, which the Triton repository's
    tensorrt backend serves), its parity with torch and its test metrics / latency on the GPU."""
    if ctx.cfg.export.tensorrt == "off":
        return "off"
    if importlib.util.find_spec("tensorrt") is None:
        return "skipped: TensorRT is not installed (pip install 'kernelflow[tensorrt]' on a CUDA machine)"
    if not torch.cuda.is_available():
        return "skipped: TensorRT needs a CUDA device"
    if not hasattr(dep, "build_engine") or not hasattr(dep, "TensorRTRunner"):
        return "skipped: kernelflow.deploy has no TensorRT engine builder in this build"
    ec = ctx.cfg.evaluate
    plan = os.path.join(os.path.dirname(onnx_path), "model.plan")
    blocks = tuple(b for b in ctx.data["blocks_test"] if b is not None)
    n = blocks[0].shape[0]
    dep.build_engine(onnx_path, plan, min_batch=1, opt_batch=min(ec.throughput_batch, n),
                     max_batch=max(ec.throughput_batch, min(n, 65536)))
    runner = dep.TensorRTRunner(plan)
    dev = runner.device
    part = [torch.as_tensor(b).to(dev) for b in sub if b is not None]
    got = runner.run(*part).double().cpu().numpy().reshape(ref.shape)
    outs = [runner.run(*(b[i:i + 65536].to(dev) for b in blocks)).float().cpu() for i in range(0, n, 65536)]
    out = torch.cat(outs)
    y = ctx.data["y_test"].cpu().numpy()
    t = ctx.table
    pred = E.probabilities(out, ctx.n_classes) if t.task == "classification" else out.reshape(-1).numpy()
    row = {"metrics": E.scores(t.task, y, pred), "size_bytes": os.path.getsize(plan), "device": f"{dev} (TensorRT)"}

    def rows(k):
        k = min(k, n)
        s = tuple(b[:k].to(dev).contiguous() for b in blocks)
        return lambda: runner.run(*s)
    row.update(E.speed(rows, ec.latency_batch, min(ec.throughput_batch, n), ec.repeats, dev))
    ctx.results["tensorrt"] = row
    return {"engine": plan, "max_abs_diff_vs_torch": float(np.max(np.abs(got - ref))) if ref.size else 0.0,
            "size_bytes": os.path.getsize(plan)}


def stage_repository(ctx: Ctx) -> dict:
    """The Triton model repository of the bundle: encode step (strings -> codes, drift gauges
    profiled on the training rows), model step, ensembles."""
    if "export_skipped" in ctx.extra:
        raise Skipped(f"no bundle (export {ctx.extra['export_skipped']})")
    try:
        mod = importlib.import_module("kernelflow.deploy.triton_repo")
    except ImportError as e:
        raise Skipped(f"kernelflow.deploy.triton_repo is not available in this build ({e})") from None
    repo = os.path.join(ctx.run_dir, "model_repository")
    train = ctx.table.X.iloc[ctx.split.train]
    res = mod.write_model_repository(os.path.join(ctx.run_dir, "bundle"), repo, name="kernelflow", reference=train)
    models = mod.repository_models(repo)
    files = sorted(os.path.relpath(os.path.join(r, f), repo) for r, _, fs in os.walk(repo) for f in fs)
    if not models or not all(os.path.isfile(os.path.join(repo, m, "config.pbtxt")) for m in res["models"]):
        raise RuntimeError(f"the model repository at {repo} is incomplete: models {models}")
    return {"repository": repo, "models": models, "backend": res["backend"], "version": res["version"],
            "files": files}


def stage_serve(ctx: Ctx) -> dict:
    """Start Triton Inference Server on the repository, send test rows through it (strings and
    all, as a client would) and compare with ONNX Runtime; the server keeps running (returned as
    ``WorkflowResult.server``) until the caller stops it."""
    if "export_skipped" in ctx.extra:
        raise Skipped(f"no bundle to serve (export {ctx.extra['export_skipped']})")
    try:
        server = importlib.import_module("kernelflow.deploy.server")
        client = importlib.import_module("kernelflow.deploy.triton_client")
    except ImportError as e:
        raise Skipped(f"the Triton server launcher is not available in this build ({e})") from None
    repo = os.path.join(ctx.run_dir, "model_repository")
    if not os.path.isdir(repo):
        raise Skipped("no model repository was written")
    try:
        inst = server.require_server()
    except server.ServerError as e:
        raise Skipped(str(e)) from None
    srv = server.TritonServer(repo, install=inst)
    srv.start()
    ctx.extra["server"] = srv
    df = ctx.table.X.iloc[ctx.split.test[:64]]
    with client.TritonClient(srv.http_url, "kernelflow") as c:
        got = np.asarray(c.predict(df), dtype=np.float64)
    ref = np.asarray(ctx.extra["onnx_runner"].predict(df), dtype=np.float64).reshape(got.shape)
    diff = float(np.max(np.abs(got - ref)))
    if diff > 1e-5 * max(1.0, float(np.max(np.abs(ref)))):
        srv.stop()
        raise RuntimeError(f"Triton's answer differs from ONNX Runtime's by {diff:.3g} on 64 test rows")
    return {"http": f"http://{srv.http_url}", "grpc": f"grpc://{srv.grpc_url}", "metrics": srv.metrics_url,
            "server": f"{inst.kind}: {inst.binary}", "smoke_rows": 64, "max_abs_diff_vs_onnxruntime": diff}
