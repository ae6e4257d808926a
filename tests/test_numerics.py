"""Numerics modes (unlearnbench/infra/numerics.py): the portable kernel paths are in effect in every way a
job runs, the kernel-level probe gives the committed digests on this CPU, and the library keeps away
from the operations whose float32 bits depend on the CPU even under the portable pins."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnbench.infra import numerics
from unlearnbench.errors import UserError

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}


def _probe(mode: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "unlearnbench", "probe", mode], capture_output=True,
                         text=True, env=ENV, check=True).stdout
    return dict(line.split() for line in out.splitlines()[1:])


def test_probe_gives_the_committed_digests():
    """Every kernel family the pipeline uses (one step of every registered architecture, a fused
    Adam step with the vector math, numpy's SIMD loops and BLAS, scikit-learn's attack models), in
    portable mode, bit for bit as committed. These digests were the same on a native AMD EPYC and on
    an emulated Intel Haswell and AMD EPYC (README, "Numerics"): a CPU where a part differs runs
    another kernel path, and the part names which library took it."""
    want = dict(line.split() for line in (GOLDEN / "probe.txt").read_text().splitlines() if line and not line.startswith("#"))
    got = _probe("portable")
    diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not diff, f"kernel paths differ from the committed ones on {numerics_cpu()}: {diff}"


def numerics_cpu() -> str:
    from unlearnbench.runtime import machine

    return machine()["cpu"]


def test_native_mode_takes_the_cpus_own_paths():
    """native removes every pin: ATen then runs the best capability the CPU has (AVX512 on an
    AVX-512 machine), and the probe still runs."""
    env = {**ENV}
    numerics.export("native", 1, env)
    assert not any(k in env for k in numerics.PORTABLE_ENV)
    out = subprocess.run([sys.executable, "-m", "unlearnbench", "probe", "native"], capture_output=True,
                         text=True, env=env, check=True).stdout
    assert out.startswith("mode native") and "total" in out


def test_export_sets_and_removes_the_variables():
    env = {"MKL_CBWR": "AVX2", "OTHER": "1"}
    numerics.export("portable", 3, env)
    assert env["MKL_CBWR"] == "COMPATIBLE" and env["ATEN_CPU_CAPABILITY"] == "avx2" and env["OTHER"] == "1"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    numerics.export("native", 3, env)
    assert "MKL_CBWR" not in env and "ATEN_CPU_CAPABILITY" not in env and env["OTHER"] == "1"
    with pytest.raises(UserError, match="not a mode"):
        numerics.export("fast", 1, {})


def test_portable_needs_avx2(monkeypatch):
    monkeypatch.setattr(numerics, "cpu_flags", lambda: {"sse2", "avx"})
    monkeypatch.setattr(numerics.sys, "platform", "linux")
    with pytest.raises(UserError, match="lacks avx2/fma: set numerics: native"):
        numerics.export("portable", 1, {})


def test_a_process_started_without_the_environment_is_refused():
    """torch loaded before the variables were set: the job's check names what runs instead."""
    env = {k: v for k, v in ENV.items() if k not in numerics.PORTABLE_ENV}
    code = ("import torch, numpy\nfrom unlearnbench.infra import numerics\n"
            "try:\n    numerics.check('portable')\nexcept numerics.NumericsError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "numerics: portable is not in effect in this job" in out and "MKL_CBWR=None" in out


def test_this_test_process_runs_the_portable_paths():
    import numpy  # noqa: F401
    import torch

    f = numerics.check("portable")
    assert f["aten_capability"] == "AVX2" and f["numpy_dispatch"] == ["X86_V3"] and torch.get_num_threads() == 1


def test_warm_servers_are_keyed_by_the_numerics_variables(monkeypatch):
    from unlearnbench.infra import warm

    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    a = warm.socket_path()
    monkeypatch.delenv("MKL_CBWR")
    assert warm.socket_path() != a


# Float32 operations whose CPU results go through MKL's vector math and differed between a native
# AMD EPYC and an emulated Intel Haswell even with MKL_CBWR=COMPATIBLE (sqrt, atan, acos; cdist
# takes a sqrt; unfused Adam-family steps take torch.sqrt). The library uses runtime.sqrt and
# training.make_optimizer (fused Adam) instead.
_CPU_DEPENDENT = [
    (re.compile(r"(?<![\w.])torch\.(sqrt|atan2?|acos|asin|cdist)\("), "torch.{0}"),
    (re.compile(r"(?<!np)(?<!math)(?<!numpy)\.(sqrt|atan2?|acos|asin)\(\)"), "Tensor.{0}()"),
    (re.compile(r"torch\.optim\.(Adam|AdamW|RMSprop|Adagrad|Adadelta|Adamax|NAdam|RAdam)\("), "torch.optim.{0}"),
]
_ALLOWED = {("runtime.py", "Tensor.sqrt()"), ("training.py", "torch.optim.Adam"), ("training.py", "torch.optim.AdamW")}


def test_the_library_avoids_operations_whose_bits_depend_on_the_cpu():
    found = []
    for path in sorted((REPO / "workflow" / "unlearnbench").rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, label in _CPU_DEPENDENT:
                for m in pattern.finditer(code):
                    what = label.format(m.group(1))
                    if (path.name, what) not in _ALLOWED and "np." not in code[max(0, m.start() - 12):m.start()]:
                        found.append(f"{path.relative_to(REPO)}:{i}: {what}")
    assert not found, ("use unlearnbench.runtime.sqrt / training.make_optimizer (infra/numerics.py explains why): "
                       + "; ".join(found))
