"""Glue for rule scripts: the job's context, its log file, one clear line for bad input, provenance,
and the OS wall around the stages that run method code (wall.py)."""

from __future__ import annotations

import dataclasses
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Callable

from ..errors import UserError
from ..runtime import Job
from .numerics import check as check_numerics
from .provenance import sidecar_path, write_job_provenance
from . import wall as os_wall


def job_of(smk: Any) -> Job:
    """The stage's context from the Snakemake job: the run's seed (wildcard `seed`, else 0), device and
    threads (params, else auto / 1) and the outputs by name."""
    wc, params = dict(smk.wildcards.items()), dict(smk.params.items())
    return Job(seed=int(wc.get("seed", 0)), device=params.get("device", "auto"), threads=int(params.get("threads", 1)),
               out={k: str(v) for k, v in smk.output.items()})


def _provenance(smk: Any) -> None:
    """The job's provenance sidecar (see provenance.py); a failure to write it never fails the job."""
    try:
        write_job_provenance(smk, wall=os_wall.state())
    except OSError as e:
        print(f"warning: no provenance sidecar written ({e})")


def _one_line(smk: Any, e: UserError, log_fh, real_err) -> None:
    msg = f"error in rule {smk.rule}: {e}"
    if log_fh:
        print(msg, file=log_fh)
    print(msg, file=real_err, flush=True)


def _walled(fn: Callable[[Any, Job], None], smk: Any, log_fh, real_err) -> None:
    """fn behind the OS wall: it reads only the job's inputs, its outputs come back when it succeeds."""
    hidden = os_wall.hidden_data(["results", smk.config.get("data_root", "")])
    job = job_of(smk)

    def child(out: dict[str, str]) -> None:
        try:
            fn(smk, dataclasses.replace(job, out=out))
        except UserError as e:
            _one_line(smk, e, log_fh, real_err)
            raise SystemExit(1) from None

    code = os_wall.walled([str(p) for p in smk.input], hidden, job.out, child)
    if code:
        sys.exit(code)  # the child said why (stderr or the log)


def script_main(fn: Callable[[Any, Job], None], smk: Any, wall: bool = False) -> None:
    """Run fn(snakemake, job) with stdout/stderr going to the rule's log; exit 1 with one line on bad input.
    `wall`: fn runs method code; it runs behind the OS wall (wall.walled) and writes `job.out` only."""
    log = str(smk.log[0]) if len(smk.log) else None
    real_err = sys.stderr
    fh = open(log, "w", buffering=1) if log else None
    os_wall.no_dump()  # every job: no other process of this user reads its memory
    stale = sidecar_path([str(p) for p in smk.output])
    if stale is not None and stale.exists():
        stale.unlink()  # a failed run leaves no provenance beside the outputs Snakemake removed
    run = (lambda s, j: _walled(fn, s, fh, real_err)) if wall else fn
    try:
        check_numerics(smk.config.get("numerics", "portable"))  # before the stage computes anything
        if fh:
            with redirect_stdout(fh), redirect_stderr(fh):
                run(smk, job_of(smk))
                _provenance(smk)
        else:
            run(smk, job_of(smk))
            _provenance(smk)
    except UserError as e:
        _one_line(smk, e, fh, real_err)
        sys.exit(1)
    except Exception:
        if fh:
            traceback.print_exc(file=fh)
        raise
    finally:
        if fh:
            fh.close()
