"""Glue for rule scripts: run a stage with its log file, turn UserError into one clear line."""

from __future__ import annotations

import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Callable

from .errors import UserError


def script_main(fn: Callable[[Any], None], smk: Any) -> None:
    """Run fn(snakemake) with stdout/stderr going to the rule's log; exit 1 with one line on bad input."""
    log = str(smk.log[0]) if len(smk.log) else None
    real_err = sys.stderr
    fh = open(log, "w", buffering=1) if log else None
    try:
        if fh:
            with redirect_stdout(fh), redirect_stderr(fh):
                fn(smk)
        else:
            fn(smk)
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
