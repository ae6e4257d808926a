"""bootstrap.py's no-op fast path: answer "nothing to do" without starting Snakemake (2 s of imports).

After a successful `bootstrap.py table1` / `run [--directory DIR] TARGET…` the fingerprint of everything the build could
depend on is written to `.snakemake/unlearnbench-uptodate.json`, in two parts. What it reads (`inputs`),
taken before Snakemake starts, so that an edit made while the build runs is never stamped as built: the
targets, the environment's UNLEARNBENCH_* / SNAKEMAKE_* variables, the path, size and mtime of every
file under the Snakefile, config.yaml, workflow/, the working directory's config.yaml and the data root,
plus the site-packages directory (installs change it). What it writes (`outputs`), taken after it: the
working directory's results/, Snakemake's incomplete-job markers and locks. The next identical call whose
fingerprints match prints that nothing changed and exits; any difference at all (an edited rule or
config, a touched, removed or added artefact, a new package) hands the call to Snakemake as usual.
Only calls made of targets alone take this path (`-n`, `--forcerun`, … always reach Snakemake), and
`UNLEARNBENCH_UPTODATE=0` turns it off. Standard library only: bootstrap.py imports it before any venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sysconfig
import time
from pathlib import Path

STAMP = Path(".snakemake") / "unlearnbench-uptodate.json"
CODE = ("Snakefile", "config.yaml", "workflow", "pyproject.toml", "requirements.lock")  # in the repository
READ = ("config.yaml",)  # in the working directory, with the data root
WRITTEN = ("results", ".snakemake/incomplete", ".snakemake/locks")  # in the working directory
MAX_FILES = 50_000  # more than this to stat (a large image-folder data root): leave it to Snakemake


def split_args(args: list[str]) -> tuple[Path | None, list[str]] | None:
    """(working directory or None, targets) for a call of targets alone, optionally after
    `--directory DIR`; None for anything else (those calls always reach Snakemake)."""
    work = None
    if args[:1] == ["--directory"] and len(args) > 1:
        work, args = Path(args[1]), args[2:]
    if not args or any(a.startswith("-") for a in args) or os.environ.get("UNLEARNBENCH_UPTODATE") == "0":
        return None
    return work, args


def _data_root(work: Path, repo: Path) -> Path | None:
    """config.yaml's data_root (the working directory's copy first), relative to the working directory."""
    for cfg in (work / "config.yaml", repo / "config.yaml"):
        try:
            m = re.search(r"^data_root:\s*([^\s#]+)", cfg.read_text(), re.M)
        except OSError:
            continue
        return (work / m.group(1)) if m and m.group(1) not in ("null", "~") else None
    return None


def _files(h, tops: list[Path]) -> int | None:
    """Hash the path, size and mtime of every file under `tops` into `h`: how many, or None (one vanished)."""
    n = 0
    for top in tops:
        if not top.exists():
            h.update(f"absent {top}\n".encode())
            continue
        walk = [(str(top), [], [top.name])] if top.is_file() else os.walk(top)
        for d, dirs, files in walk:
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for f in sorted(files):
                p = d if top.is_file() else os.path.join(d, f)
                try:
                    st = os.stat(p)
                except OSError:
                    return None
                h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
                n += 1
                if n > MAX_FILES:
                    return None
    return n


def inputs(work: Path, repo: Path, targets: list[str], site: str | None = None) -> str | None:
    """What the build reads: take it before the build starts. None: too many files to stat."""
    h = hashlib.sha256(json.dumps({"targets": targets, "env": sorted(
        (k, v) for k, v in os.environ.items() if k.startswith(("UNLEARNBENCH_", "SNAKEMAKE_")))}).encode())
    tops = [repo / t for t in CODE] + [work / t for t in READ] + [p for p in (_data_root(work, repo),) if p is not None]
    site = site or sysconfig.get_paths()["purelib"]
    try:
        h.update(f"site|{os.stat(site).st_mtime_ns}".encode())
    except OSError:
        return None
    return h.hexdigest() if _files(h, tops) is not None else None


def outputs(work: Path) -> str | None:
    """What the build writes: take it after the build."""
    h = hashlib.sha256()
    return h.hexdigest() if _files(h, [work / t for t in WRITTEN]) is not None else None


def is_up_to_date(work: Path, repo: Path, targets: list[str], site: str | None = None) -> str | None:
    """When the last successful build of these targets is still current: its time, else None."""
    try:
        rec = json.loads((work / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if rec.get("targets") != targets or not all((work / t).exists() for t in targets):
        return None
    now = [inputs(work, repo, targets, site), outputs(work)]
    return rec.get("built") if None not in now and now == [rec.get("inputs"), rec.get("outputs")] else None


def record(work: Path, targets: list[str], start: str | None) -> None:
    """After a successful build: `start` is `inputs()` taken before it began."""
    after = outputs(work)
    path = work / STAMP
    if start is None or after is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"targets": targets, "inputs": start, "outputs": after,
                               "built": time.strftime("%Y-%m-%d %H:%M:%S")}))
    os.replace(tmp, path)
