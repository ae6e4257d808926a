"""Glue for rule scripts: the job's context, its log file, one clear line for bad input, provenance."""

from __future__ import annotations

import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Callable

from ..errors import UserError
from ..runtime import Job
from .numerics import check as check_numerics
from .provenance import write_job_provenance


def job_of(smk: Any) -> Job:
    """The stage's context from the Snakemake job: the run's seed (wildcard `seed`, else 0), device and
    threads (params, else auto / 1) and the outputs by name."""
    wc, params = dict(smk.wildcards.items()), dict(smk.params.items())
    return Job(seed=int(wc.get("seed", 0)), device=params.get("device", "auto"), threads=int(params.get("threads", 1)),
               out={k: str(v) for k, v in smk.output.items()})


def _provenance(smk: Any) -> None:
    """The job's provenance sidecar (see provenance.py); a failure to write it never fails the job."""
    try:
        write_job_provenance(smk)
    except OSError as e:
        print(f"warning: no provenance sidecar written ({e})")


def script_main(fn: Callable[[Any, Job], None], smk: Any) -> None:
    """Run fn(snakemake, job) with stdout/stderr going to the rule's log; exit 1 with one line on bad input."""
    log = str(smk.log[0]) if len(smk.log) else None
    real_err = sys.stderr
    fh = open(log, "w", buffering=1) if log else None
    try:
        check_numerics(smk.config.get("numerics", "portable"))  # before the stage computes anything
        if fh:
            with redirect_stdout(fh), redirect_stderr(fh):
                fn(smk, job_of(smk))
                _provenance(smk)
        else:
            fn(smk, job_of(smk))
            _provenance(smk)
    except UserError as e:
        msg = f"error in rule {smk.rule}: {e}"
        if fh:
            print(msg, file=fh)
        print(msg, file=real_err)
        sys.exit(1)
    except Exception:
        if fh:
            traceback.print_exc(file=fh)
        raise
    finally:
        if fh:
            fh.close()
