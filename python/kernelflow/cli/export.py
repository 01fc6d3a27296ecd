"""``kernelflow export``: a bundle, or a saved preprocessor and a model file, to one ONNX graph
(and a TensorRT engine where TensorRT works), with a summary of inputs, outputs, op types and size.

    kernelflow export BUNDLE_DIR [-o model.onnx] [--engine model.plan]
    kernelflow export preprocessor.safetensors [--model model.pt2 | model.onnx] -o model.onnx

``--model``: a ``torch.export`` program (.pt2; kernelflow layers inside are exported with their
ONNX forms) or an ONNX file taking the preprocessed matrix (put behind the preprocessing graph).
Without ``--model`` the graph is the preprocessing alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

ORDER = 40


def _export(args) -> Path:
    import kernelflow  # noqa: PLC0415
    import kernelflow.preprocessing  # noqa: F401, PLC0415  (the classes kernelflow.load may rebuild)
    from kernelflow.deploy import export_onnx, load_bundle  # noqa: PLC0415
    from kernelflow.deploy.summary import compose_onnx  # noqa: PLC0415

    src = Path(args.source)
    if src.is_dir():
        if args.model:
            raise ValueError("a bundle already holds its model: --model is for a preprocessor file")
        b = load_bundle(src)  # verifies the hashes
        if args.output is None:
            return b.onnx_path
        out = Path(args.output)
        shutil.copyfile(b.onnx_path, out)
        data = b.onnx_path.with_name(b.onnx_path.name + ".data")
        if data.exists():
            shutil.copyfile(data, out.with_name(out.name + ".data"))
        return out
    if not src.is_file():
        raise FileNotFoundError(f"{src} is neither a bundle directory nor a saved preprocessor")
    pre = kernelflow.load(src)
    if type(pre).__name__ != "Preprocessor":
        raise ValueError(f"{src} holds a {type(pre).__name__}, not a kernelflow Preprocessor")
    out = Path(args.output or src.with_suffix(".onnx"))
    if not args.model:
        return export_onnx(None, out, preprocessor=pre, opset=args.opset)
    mp = Path(args.model)
    if not mp.is_file():
        raise FileNotFoundError(f"--model {mp} does not exist")
    if mp.suffix == ".onnx":
        with tempfile.TemporaryDirectory() as d:
            g = export_onnx(None, Path(d) / "pre.onnx", preprocessor=pre, opset=args.opset)
            return compose_onnx(g, mp, out, opset=args.opset)
    if mp.suffix == ".pt2":
        import torch  # noqa: PLC0415

        model = torch.export.load(str(mp)).module()
        return export_onnx(model, out, preprocessor=pre, opset=args.opset, dtype=args.dtype)
    raise ValueError(f"--model must be a torch.export program (.pt2) or an ONNX file (.onnx), got {mp.name}")


def cmd_export(args: argparse.Namespace) -> int:
    from kernelflow.deploy.summary import describe_onnx  # noqa: PLC0415

    path = _export(args)
    info = describe_onnx(path)
    if args.engine:
        from kernelflow.deploy import build_engine  # noqa: PLC0415

        plan = build_engine(path, args.engine, min_batch=args.min_batch, opt_batch=args.opt_batch,
                            max_batch=args.max_batch, workspace_gb=args.workspace_gb, timing_cache=args.timing_cache)
        info["engine"] = {"path": str(plan), "bytes": plan.stat().st_size,
                          "batch": [args.min_batch, args.opt_batch, args.max_batch]}
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{info['path']}  ({info['bytes'] / 1e6:.3f} MB{', external data' if info['external_data'] else ''}, "
          f"opset {info['opset'].get('ai.onnx')})")
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            print(f"  {kind[:-1]:<6} {v['name']:<12} {v['dtype']:<8} [{', '.join(map(str, v['shape']))}]")
    print(f"  {info['nodes']} nodes: " + ", ".join(f"{k} {v}" for k, v in info["op_types"].items()))
    print(f"  {info['parameters']} parameters: " + ", ".join(f"{k} {v}" for k, v in info["parameters_by_dtype"].items()))
    if "engine" in info:
        e = info["engine"]
        print(f"  TensorRT engine {e['path']} ({e['bytes'] / 1e6:.3f} MB, batch {e['batch'][0]}..{e['batch'][2]})")
    return 0


def _check(args) -> str | None:
    if not 1 <= args.min_batch <= args.opt_batch <= args.max_batch:
        return "need 1 <= --min-batch <= --opt-batch <= --max-batch"
    if args.workspace_gb <= 0:
        return "--workspace-gb must be positive"
    return None


def register(sub) -> None:
    p = sub.add_parser("export", help="a bundle or a saved preprocessor (+ model) to ONNX, and a TensorRT engine")
    p.add_argument("source", help="a bundle directory (save_bundle) or a saved Preprocessor (.safetensors)")
    p.add_argument("--model", help="a torch.export program (.pt2) or an ONNX model taking the preprocessed matrix")
    p.add_argument("-o", "--output", help="the ONNX file to write (a bundle's own graph when omitted)")
    p.add_argument("--opset", type=int, default=None, help="ai.onnx opset (default 19)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="precision of the model part of a .pt2 model")
    p.add_argument("--engine", help="also build a TensorRT engine (needs TensorRT and a GPU)")
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=256)
    p.add_argument("--max-batch", type=int, default=4096)
    p.add_argument("--workspace-gb", type=float, default=4.0)
    p.add_argument("--timing-cache", help="TensorRT timing cache file (read, then updated)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_export, check=_check)
