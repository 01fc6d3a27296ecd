"""preprocess suite: mean imputation followed by standard scaling of float32 [rows, cols].

Implementations, on the same array: scikit-learn ``SimpleImputer(mean) -> StandardScaler``;
kernelflow's fused path (one ``column_stats`` pass + one ``numeric_transform`` pass);
kernelflow's estimators; numpy; numba-parallel kernels of the same formulas; torch eager and the
transform under ``torch.compile``.

Ops: fit (column statistics), transform (impute + standardize into a fresh float32 array),
transform_out (the same into a reused output: no page faults on a new array), fit_transform.
Bytes, the floor each op must move: fit reads x (rows*cols*4); transform reads x and writes y;
fit_transform reads x twice (the statistics must be known before the first output) and writes y.
With CUDA present, the GPU rows come from ``preprocess_gpu``.
"""

from __future__ import annotations

import os
import platform
from typing import Any, Callable

import numpy as np
import torch

from kernelflow.bench.compare import impute_scale_params, max_rel_diff
from kernelflow.bench.data import make_data
from kernelflow.bench.timing import interleaved_ms, record

OPS = ("fit", "transform", "transform_out", "fit_transform")


class Impl:
    """fit(X) -> state; transform(state, X) -> Y; transform_into(state, X, out) or None."""

    def __init__(self, fit: Callable, transform: Callable, transform_into: Callable | None = None):
        self.fit, self.transform, self.transform_into = fit, transform, transform_into


def _sklearn() -> Impl:
    from sklearn.impute import SimpleImputer  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    return Impl(lambda X: make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()).fit(X),
                lambda state, X: state.transform(X))


def _kernelflow_fused(backend: str) -> Impl:
    from kernelflow.ops import column_stats, numeric_transform  # noqa: PLC0415

    def fit(X):
        return torch.from_numpy(impute_scale_params(column_stats(torch.from_numpy(X), backend=backend), X.shape[0]))

    def transform(params, X):
        return numeric_transform(torch.from_numpy(X), params, "float32", backend=backend).numpy()

    def transform_into(params, X, out):
        numeric_transform(torch.from_numpy(X), params, "float32", backend=backend, out=torch.from_numpy(out))

    return Impl(fit, transform, transform_into)


def _kernelflow_estimators(backend: str) -> Impl:
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415

    from kernelflow.preprocessing import SimpleImputer, StandardScaler  # noqa: PLC0415

    return Impl(lambda X: make_pipeline(SimpleImputer(strategy="mean", backend=backend),
                                        StandardScaler(backend=backend)).fit(X),
                lambda state, X: np.asarray(state.transform(X)))


def _params32(stats: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = impute_scale_params(stats, rows)
    return p[0].astype(np.float32), p[3].astype(np.float32), p[4].astype(np.float32)


def _numpy() -> Impl:
    def fit(X):
        mean = np.nanmean(X, axis=0, dtype=np.float64)
        n = np.sum(~np.isnan(X), axis=0)
        m2 = np.nanvar(X, axis=0, dtype=np.float64) * n
        return _params32(np.stack([n, X.shape[0] - n, mean, m2, mean, mean]), X.shape[0])  # min/max unused

    def transform(state, X):
        fill, shift, inv = state
        return (np.where(np.isnan(X), fill, X) - shift) * inv

    def transform_into(state, X, out):
        fill, shift, inv = state
        np.copyto(out, X)
        np.copyto(out, np.broadcast_to(fill, X.shape), where=np.isnan(X))
        out -= shift
        out *= inv

    return Impl(fit, transform, transform_into)


def _numba() -> Impl:
    from kernelflow.bench.peers.numba_kernels import kernels  # noqa: PLC0415

    k = kernels()
    nchunks = 4 * k["threads"]

    def fit(X):
        n, mm = k["stats"](X, nchunks)
        return _params32(np.stack([n, X.shape[0] - n, mm[0], mm[1], mm[0], mm[0]]), X.shape[0])

    return Impl(fit, lambda state, X: k["transform"](X, *state),
                lambda state, X, out: k["transform_into"](X, *state, out))


def _torch(compile: bool) -> Impl:
    """What a torch user writes: float64 nanmean / squared deviations, then where + sub + mul;
    ``compile``: the transform under torch.compile (inductor's vectorized C++ loop)."""

    def fit(X):
        x = torch.from_numpy(X)
        fin = torch.isfinite(x)
        n = fin.sum(0).to(torch.float64)
        mean = torch.nanmean(x, 0, dtype=torch.float64)
        m2 = torch.where(fin, x.double() - mean, 0.0).square().sum(0)
        s = torch.stack([n, x.shape[0] - n, mean, m2, mean, mean]).numpy()  # min/max unused
        return tuple(torch.from_numpy(v) for v in _params32(s, X.shape[0]))

    def body(x, fill, shift, inv):
        return (torch.where(torch.isnan(x), fill, x) - shift) * inv

    fn = torch.compile(body, dynamic=False) if compile else body

    def transform(state, X):
        return fn(torch.from_numpy(X), *state).numpy()

    def transform_into(state, X, out):
        fill, shift, inv = state
        o = torch.from_numpy(out)
        torch.where(torch.isnan(x := torch.from_numpy(X)), fill, x, out=o)
        o.sub_(shift).mul_(inv)

    return Impl(fit, transform, None if compile else transform_into)


def implementations(backend: str = "cpu", compile: bool = False) -> dict[str, Callable[[], Impl]]:
    """name -> factory; a factory raises when its library is missing."""
    impls = {
        "sklearn": _sklearn,
        "kernelflow_fused": lambda: _kernelflow_fused(backend),
        "kernelflow_estimators": lambda: _kernelflow_estimators(backend),
        "numpy": _numpy,
        "numba_parallel": _numba,
        "torch_eager": lambda: _torch(False),
    }
    if compile:
        impls["torch_compile"] = lambda: _torch(True)
    return impls


def _fused_with_fill(X: np.ndarray, pipe, backend: str, ref: np.ndarray) -> float | None:
    """The fused formula fed sklearn's own (float32-accumulated) imputer fill values must
    reproduce sklearn's two-step float32 output: checks the closed form, not the statistics."""
    from kernelflow.ops import column_stats, numeric_transform  # noqa: PLC0415

    t = torch.from_numpy(X)
    p = impute_scale_params(column_stats(t, backend=backend), X.shape[0], fill=pipe[0].statistics_.astype(X.dtype))
    return max_rel_diff(ref, numeric_transform(t, p, "float32", backend=backend).numpy())


def run_cpu(rows: int = 1_000_000, cols: int = 32, nan: float = 0.05, repeat: int = 5, backend: str = "cpu",
            impls: list[str] | None = None, tol: float = 1e-5, log: Callable[[str], None] | None = None,
            compile: bool = False) -> dict:
    """Check every implementation against scikit-learn on a float64 copy, then time each op with
    the implementations interleaved; returns {rows, skipped, checks, threads, notes, fused_ok, tol}."""
    X = make_data(rows, cols, nan)
    nb = X.nbytes
    nbytes = {"fit": nb, "transform": 2 * nb, "transform_out": 2 * nb, "fit_transform": 3 * nb}
    factories = implementations(backend, compile)
    names = list(impls or factories)
    bad = [n for n in names if n not in factories]
    if bad:
        raise ValueError(f"impls: unknown {bad}; expected some of {list(factories)}")
    if "sklearn" in names:  # the reference runs first
        names.remove("sklearn")
        names.insert(0, "sklearn")
    skipped: dict[str, str] = {}
    checks: dict[str, Any] = {}
    ready: dict[str, tuple[Impl, Any, np.ndarray | None]] = {}
    ref32 = None
    X64 = X.astype(np.float64)
    sk = _sklearn()
    pipe64 = sk.fit(X64)
    ref64 = np.asarray(sk.transform(pipe64, X64), dtype=np.float32)  # the exact answer
    del X64
    for name in names:
        if log:
            log(f"check {name}")
        try:
            impl = factories[name]()
            state = impl.fit(X)
            out = impl.transform(state, X)
        except Exception as e:  # an optional library (numba, kernelflow.preprocessing) is missing or fails
            skipped[name] = f"{type(e).__name__}: {e}"
            if log:
                log(f"{name}: skipped ({skipped[name]})")
            continue
        checks[name + "_vs_float64"] = max_rel_diff(ref64, out)
        if name == "sklearn":
            # sklearn's float32 SimpleImputer accumulates the mean in float32 (np.ma.mean): its
            # error against the float64 pipeline grows with rows
            ref32 = out
            checks["sklearn_float32_vs_float64"] = checks.pop("sklearn_vs_float64")
            if "kernelflow_fused" in names:
                try:
                    checks["fused_formula_with_sklearn_fill"] = _fused_with_fill(X, state, backend, out)
                except Exception as e:
                    skipped["fused_formula_with_sklearn_fill"] = f"{type(e).__name__}: {e}"
        elif ref32 is not None:
            checks[name + "_vs_sklearn"] = max_rel_diff(ref32, out)
        buf = None
        if impl.transform_into is not None:
            buf = np.full_like(X, np.nan)  # a stale value left unwritten would show in the check
            impl.transform_into(state, X, buf)
            checks[name + "_out_vs_float64"] = max_rel_diff(ref64, buf)
        ready[name] = (impl, state, buf)
        del out
    times: dict[str, dict[str, float]] = {}
    for op in OPS:
        if log:
            log(f"{op} [{rows}, {cols}]")
        fns = {}
        for name, (impl, state, buf) in ready.items():
            if op == "fit":
                fns[name] = lambda impl=impl: impl.fit(X)
            elif op == "transform":
                fns[name] = lambda impl=impl, state=state: impl.transform(state, X)
            elif op == "transform_out" and buf is not None:
                fns[name] = lambda impl=impl, state=state, buf=buf: impl.transform_into(state, X, buf)
            elif op == "fit_transform":
                fns[name] = lambda impl=impl: impl.transform(impl.fit(X), X)
        times[op] = interleaved_ms(fns, repeat=repeat, warmup=1) if fns else {}
    out_rows = []
    for op in OPS:
        for name, ms in times[op].items():
            extra: dict[str, Any] = {"max_rel_diff_vs_float64": checks.get(
                name + ("_out_vs_float64" if op == "transform_out" else "_vs_float64"),
                checks.get("sklearn_float32_vs_float64") if name == "sklearn" else None)}
            if name + "_vs_sklearn" in checks:
                extra["max_rel_diff_vs_sklearn"] = checks[name + "_vs_sklearn"]
            if name == "numba_parallel":
                from kernelflow.bench.peers.numba_kernels import kernels  # noqa: PLC0415

                extra["compile_s_excluded"] = kernels()["compile_s"]
            out_rows.append(record(op, name, ms, shape=(rows, cols), dtype="float32", nbytes=nbytes[op], **extra))
    fused = checks.get("kernelflow_fused_vs_float64")
    fused_out = checks.get("kernelflow_fused_out_vs_float64")
    threads = {"torch": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if "numba_parallel" in ready:
        from kernelflow.bench.peers.numba_kernels import kernels  # noqa: PLC0415

        threads["numba"] = kernels()["threads"]
    notes = (
        f"float32 [{rows}, {cols}] with {nan:.0%} NaN, column j ~ N(U(-5,5), U(0.5,5)); the same array for every "
        f"implementation. Each op timed with the implementations interleaved (round-robin), median of {repeat}. "
        "fit = column statistics (sklearn: SimpleImputer(mean).fit + StandardScaler.fit on the imputed copy), "
        "transform = impute + standardize into a new float32 array, transform_out = the same into a reused "
        "output, fit_transform = both. GB/s counts the floor: x read once per pass, y written once. "
        "kernelflow_fused = one column_stats pass + one numeric_transform pass with fill = f = float32(mean), "
        "shift = mean' = (n mean + k f)/rows, inv_scale = 1/sqrt(M2'/rows), M2' = M2 + n (mean - mean')^2 + "
        "k (f - mean')^2, k = rows - n. numpy/numba compute the same parameters from their own statistics. "
        "numba_parallel: @njit(parallel=True), JIT compile excluded (compile_s_excluded). torch_eager: float64 "
        "nanmean and squared deviations, then where + sub + mul; torch_compile: that transform under "
        "torch.compile (compiled in the check, not timed). "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. max_rel_diff = max |y - y_ref| / max(|y_ref|, 1); "
        "_vs_float64: against the scikit-learn pipeline on a float64 copy (the exact answer; fused_ok requires "
        "<= tol); scikit-learn's float32 SimpleImputer accumulates the mean in float32 (np.ma.mean), off by "
        "checks.sklearn_float32_vs_float64; checks.fused_formula_with_sklearn_fill feeds the fused formula "
        "sklearn's own fill values and reproduces its float32 result."
    )
    return {"rows": out_rows, "skipped": skipped, "checks": checks, "threads": threads, "notes": notes,
            "fused_ok": fused is not None and fused <= tol and (fused_out is None or fused_out <= tol), "tol": tol}


def run(cfg, progress) -> dict:
    """The suite entry point (see ``kernelflow.bench.suites``)."""
    from kernelflow.bench.codepaths import family_path  # noqa: PLC0415

    res = run_cpu(cfg.rows, cfg.cols, cfg.nan, cfg.repeat, backend=cfg.cpu_backend, impls=cfg.impls, log=progress,
                  compile=cfg.compile)
    failures = []
    if "kernelflow_fused" in (cfg.impls or implementations()) and not res["fused_ok"]:
        failures.append(f"kernelflow_fused differs from the float64 pipeline by "
                        f"{res['checks'].get('kernelflow_fused_vs_float64')} (> {res['tol']:g})")
    for r in res["rows"]:
        if r["impl"].startswith("kernelflow"):
            r["path"] = {"fit": family_path("stats")}.get(r["op"], family_path("transform"))
    out = {"rows": res["rows"], "skipped": res["skipped"], "checks": res["checks"], "failures": failures,
           "notes": res["notes"], "threads": res["threads"]}
    if cfg.gpu and torch.cuda.is_available():
        from kernelflow.bench.suites.preprocess_gpu import run_gpu  # noqa: PLC0415

        progress("GPU")
        g = run_gpu(((cfg.gpu_rows, cfg.cols),), cfg.nan, compile=cfg.compile)
        out["rows"] += [dict(r, device="cuda") for r in g["rows"]]
        out["failures"] += g["failures"]
        out["ceilings"] = {"gpu_" + k: v for k, v in g["ceilings"].items()}
        out["notes"] += " GPU rows (device=cuda): " + g["notes"]
    return out
