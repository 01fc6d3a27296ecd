"""GPU benchmark of the fused distillation loss: forward + backward of DistillationLoss on
[8192 x 32000] logits (bfloat16 and float32), kernelflow cuda and triton vs the eager torch
composition and torch.compile of it.

Bytes counted (the floor): read s and t once, write the gradient once (forward), then backward
reads the stored gradient and writes grad_s: 5 * N * C * itemsize. Reported as GB/s and as a
fraction of the measured device copy bandwidth. Peak memory: torch.cuda.max_memory_allocated
above the inputs during one forward + backward. Correctness against the float64 reference is
checked first (a small slice) and for the full size against the eager composition.

Run on a CUDA machine: PYTHONPATH=python python benchmarks/gpu_distill.py [out.json]
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from kernelflow.bench.timing import copy_bandwidth_gbps, cuda_time_ms, device_name, record, write_results
from kernelflow.distill import DistillationLoss
from kernelflow.ops.distill import distill_loss_reference

N, C = 8192, 32000
T, ALPHA = 2.0, 0.5


def eager_loss(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The usual composition in the logits' dtype (what a training script writes)."""
    kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True)
    return ALPHA * T * T * kl + (1 - ALPHA) * F.cross_entropy(s, y)


def make(dtype: torch.dtype, seed: int):
    g = torch.Generator(device="cuda").manual_seed(seed)
    s = (torch.randn(N, C, device="cuda", generator=g) * 2).to(dtype).requires_grad_(True)
    t = (torch.randn(N, C, device="cuda", generator=g) * 2).to(dtype)
    y = torch.randint(0, C, (N,), device="cuda", generator=g)
    y[::97] = -100
    return s, t, y


def fwd_bwd(fn):
    def run(s, t, y):
        s.grad = None
        fn(s, t, y).backward()
    return run


def check(impls: dict, dtype: torch.dtype) -> dict:
    """max |loss - ref| and max |grad - ref| on a 64-row slice vs float64, plus full-size vs eager."""
    out = {}
    s, t, y = make(dtype, 123)
    sl = s.detach()[:64].clone().requires_grad_(True)
    ref = distill_loss_reference(sl.double(), t[:64].double(), y[:64], T, ALPHA)
    g_ref, = torch.autograd.grad(ref, sl)
    for name, fn in impls.items():
        a = sl.detach().clone().requires_grad_(True)
        v = fn(a, t[:64], y[:64])
        g, = torch.autograd.grad(v, a)
        out[name] = {"loss_err": float((v.double() - ref).abs()), "grad_err": float((g.double() - g_ref.double()).abs().max())}
    return out


def peak_mb(fn, s, t, y) -> float:
    torch.cuda.synchronize()
    s.grad = None
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn(s, t, y)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def main(out_path: str = "benchmarks/results/gpu_distill.json") -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_distill needs a CUDA device")
    import kernelflow

    copy_gbps = copy_bandwidth_gbps()
    rows, checks = [], {}
    eager_compiled = torch.compile(eager_loss)
    impls = {"torch_eager": eager_loss, "torch_compile": eager_compiled}
    for b in ("cuda", "triton"):
        if b in kernelflow.available_backends("cuda"):
            impls[f"kernelflow_{b}"] = DistillationLoss(T, ALPHA, backend=b)
    for dtype in (torch.bfloat16, torch.float32):
        dname = str(dtype).removeprefix("torch.")
        checks[dname] = check(impls, dtype)
        inputs = [make(dtype, seed) for seed in range(2)]  # 2 x (2 + grad) x N x C: rotate past L2
        nbytes = 5 * N * C * inputs[0][0].element_size()
        for name, fn in impls.items():
            run = fwd_bwd(fn)
            ms = cuda_time_ms(run, inputs, warmup=3, repeat=20)
            mb = peak_mb(run, *inputs[0])
            rows.append(record("distill_loss_fwd_bwd", name, ms, shape=(N, C), dtype=dname, nbytes=nbytes,
                               ceiling_gbps=copy_gbps, peak_mem_mb=round(mb, 1)))
            print(rows[-1], flush=True)
        del inputs
        torch.cuda.empty_cache()
    return write_results(out_path, "gpu_distill", rows, ceilings={"copy_gbps": copy_gbps},
                         notes=f"device {device_name()}; T={T}, alpha={ALPHA}, reduction mean, 1/97 rows ignored. "
                               f"correctness (64-row slice vs float64): {checks}")


if __name__ == "__main__":
    main(*sys.argv[1:])
