"""Numerics modes: which CPU kernel paths torch, numpy and scikit-learn may take.

The same float32 program gives other bits on another CPU when a library picks its kernels at run
time: torch's own vectorised kernels (ATen: AVX-512, AVX2 or plain), oneDNN's JIT convolutions
(AVX-512 / AMX code on CPUs that have it), MKL's matrix products (a vendor check: on AMD MKL takes
another code path than on Intel, and `MKL_CBWR=AVX2` is ignored there), numpy's SIMD loops and
the OpenBLAS kernels under numpy / scikit-learn (one kernel set per CPU family). Each library reads
its switch once, when it loads or first runs, so the mode is set in the environment of every job
before torch or numpy are imported: the Snakefile exports it (local jobs, warm forks and Slurm
job steps inherit it, and the warm server is keyed by it), and every job checks on start that the
libraries really run the pinned paths (`check`).

- `portable` (the default on CPU): the AVX2 build of every kernel on every x86-64 CPU with AVX2 and
  FMA (Intel since Haswell, AMD since Zen): ATen `avx2`, oneDNN at most AVX2, MKL's `COMPATIBLE`
  reproducibility branch (the one branch its documentation guarantees on Intel and non-Intel
  CPUs), numpy's X86_V3 loops, OpenBLAS's Haswell kernels, fixed thread counts, no dynamic
  threading. One config gives the same bytes on any such CPU.
- `native`: every library chooses for this CPU (faster: see the README's benchmark); the numbers
  are reproducible on this CPU model only.

Standard library only at module level: the Snakefile and conftest import it before torch/numpy.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import UserError

MODES = ("portable", "native")

# The variables each library reads when it loads; `native` removes them (the libraries' defaults).
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's vectorised kernels (and SLEEF math): the AVX2 build
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions): no AVX-512 or AMX JIT code
    "DNNL_MAX_CPU_ISA": "AVX2",  # its older name, for older builds
    "MKL_CBWR": "COMPATIBLE",  # MKL (matrix products): identical on Intel and AMD; AVX2 is not honoured on AMD
    "MKL_DYNAMIC": "FALSE",  # MKL's reproducibility conditions: a fixed thread count
    "OMP_DYNAMIC": "FALSE",
    "NPY_ENABLE_CPU_FEATURES": "X86_V3",  # numpy's SIMD loops (exp, log, sort, ...): the AVX2 level
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS: one kernel set (blocking fixed)
}
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
NEEDED_FLAGS = ("avx2", "fma")  # /proc/cpuinfo flags the portable kernels need


class NumericsError(UserError):
    """The requested mode cannot be set up or is not in effect (one line, printed as is)."""


def cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def environment(mode: str, threads: int) -> dict[str, str | None]:
    """{variable: value, or None to remove} that a process needs before it imports torch / numpy."""
    if mode not in MODES:
        raise NumericsError(f"numerics: {mode!r} is not a mode; use one of {', '.join(MODES)}")
    if mode == "native":
        return {k: None for k in PORTABLE_ENV}
    return {**PORTABLE_ENV, **{k: str(int(threads)) for k in THREAD_VARS}}


def export(mode: str, threads: int = 1, environ: Any = None) -> None:
    """Set the mode's variables in `environ` (default os.environ): every process started from here
    inherits them. Fails with one line where the mode cannot hold (a CPU without AVX2)."""
    env = os.environ if environ is None else environ
    if mode == "portable" and sys.platform.startswith("linux"):
        flags = cpu_flags()
        if flags is not None and not set(NEEDED_FLAGS) <= flags:
            raise NumericsError("numerics: portable pins the AVX2 kernels, and this CPU lacks "
                                f"{'/'.join(sorted(set(NEEDED_FLAGS) - flags))}: set numerics: native")
    for k, v in environment(mode, threads).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v


def active_mode() -> str:
    """The mode this process's environment sets up ("portable" only when every pin is in place)."""
    return "portable" if all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items()) else "native"


def facts() -> dict[str, Any]:
    """The kernel paths this process runs (never imports a library itself): recorded in provenance."""
    out: dict[str, Any] = {k: os.environ.get(k) for k in (*PORTABLE_ENV, *THREAD_VARS)}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["aten_capability"] = torch.backends.cpu.get_cpu_capability()
        out["mkldnn_enabled"] = bool(torch.backends.mkldnn.enabled)
        out["torch_threads"] = torch.get_num_threads()
    np = sys.modules.get("numpy")
    if np is not None:
        try:
            from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

            out["numpy_dispatch"] = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
        except ImportError:
            pass
    return out


def check(mode: str) -> dict[str, Any]:
    """In a job, after torch and numpy are imported: the facts, or NumericsError when the pinned
    paths are not the ones running (a process started without the environment)."""
    f = facts()
    if mode != "portable":
        return f
    wrong = [f"{k}={f.get(k)!r} (want {v!r})" for k, v in PORTABLE_ENV.items() if f.get(k) != v]
    if "aten_capability" in f and f["aten_capability"] != "AVX2":
        wrong.append(f"torch runs {f['aten_capability']} kernels (want AVX2)")
    if "numpy_dispatch" in f and any(d != "X86_V3" for d in f["numpy_dispatch"]):
        wrong.append(f"numpy dispatches {f['numpy_dispatch']} (want X86_V3)")
    if wrong:
        raise NumericsError("numerics: portable is not in effect in this job: " + "; ".join(wrong) +
                            ". Its environment must be set before torch/numpy load: run jobs through the "
                            "Snakefile (it exports it), or call unlearnbench.infra.numerics.export first")
    return f
