"""The CPU code path each op family runs here (``kernelflow.build_info()["code_paths"]``),
recorded on every kernelflow row so a result names the kernel that produced it."""

from __future__ import annotations


def code_paths() -> dict[str, str]:
    """{family: path} now (a forced level, KERNELFLOW_CPU_ISA or _C.set_cpu_isa, shows here)."""
    import kernelflow  # noqa: PLC0415

    return dict(kernelflow.build_info().get("code_paths", {}))


def family_path(family: str) -> str | None:
    """The path of one family, None without the extension."""
    return code_paths().get(family)
