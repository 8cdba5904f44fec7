"""Pinning what decides a training run's floating-point results, and recording it.

Same seed, same code and same packages still give different weights on different CPUs:
PyTorch (ATen), oneDNN and MKL choose vector kernels by what the processor offers, and a
different kernel sums floats in a different order.  `pinned_env()` names the settings that
fix those choices to one instruction-set level that every x86-64 CPU of the last decade
has (AVX2); `ensure_pinned()` re-executes the current command with them when they are not
already in effect, because they are read once, when torch loads its libraries.
"""
from __future__ import annotations

import os
import platform
import sys

# Read by the libraries at load time (hence re-exec).  MKL_CBWR: MKL's "conditional numerical
# reproducibility" mode -- the same code path on every processor that supports it.
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_REEXEC_FLAG = "SOP_PINNED_REEXEC"


def pinned_env() -> dict[str, str]:
    return dict(PINNED_ENV)


def is_pinned(env=os.environ) -> bool:
    return all(env.get(k) == v for k, v in PINNED_ENV.items())


def ensure_pinned(argv: list[str]) -> None:
    """Re-run `python -m sop <argv>` with the pinned environment unless it is already set.

    Only on x86-64 (the pinned names are x86 instruction sets); elsewhere nothing is changed
    and `describe()` records that the run was not pinned.
    """
    if is_pinned() or os.environ.get(_REEXEC_FLAG) or not has_avx2():
        return
    env = dict(os.environ, **PINNED_ENV, **{_REEXEC_FLAG: "1"})
    # The interpreter's own flags (torchrun's -u, -X, -W) are kept; sys.orig_argv has them.
    flags = list(getattr(sys, "orig_argv", [])[1:])
    flags = flags[: flags.index("-m")] if "-m" in flags else []
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *flags, "-m", "sop", *argv], env)


def has_avx2() -> bool:
    """x86-64 with AVX2 (what the pinned level needs); elsewhere nothing is pinned."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


def set_deterministic() -> None:
    """Deterministic kernels and one thread (float sums then do not depend on the core count)."""
    import torch
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(1)


def cpu_vector_flags() -> list[str]:
    """The processor's vector extensions (avx2, avx512f, fma, ...) from /proc/cpuinfo.

    Recorded because a model name such as "AMD EPYC" does not tell two processor generations
    apart, and the extensions decide which kernels unpinned libraries (and NumPy's sort) use.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(f for f in set(flags) if f.startswith(("avx", "sse4", "fma", "amx")))


def describe() -> dict:
    """What this process ran under: recorded in a checkpoint beside its command."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return dict(pinned=is_pinned(), env={k: os.environ.get(k) for k in PINNED_ENV},
                cpu=cpu, cpu_flags=cpu_vector_flags(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads(),
                deterministic=torch.are_deterministic_algorithms_enabled(), torch=torch.__version__,
                python=platform.python_version())
