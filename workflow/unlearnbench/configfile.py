"""Config files checked before anything parses them for real: at most 1 MiB of UTF-8 text, and YAML
whose aliases expand to a bounded number of values and which nests a bounded number of levels.

A YAML alias is a reference: `&a [...]` once and `*a` nine times gives nine references to one list,
cheap to load, but every consumer that walks the config (the schema validator formatting an error,
params compared as text, provenance hashing) expands it; nine levels of nine aliases are 387 million
values ("billion laughs"). Snakemake reads `--configfile` itself before the Snakefile runs, with
references shared, so the Snakefile can still stop such a file before anything walks it
(config.load_config_files); it cannot stop a file Snakemake fails to read (not UTF-8, nested past
Python's recursion limit: a traceback), which bootstrap.py checks before it starts Snakemake
(`command_line_problem`).

The expansion is counted on libyaml's event stream (no recursion: a file of a million `[` would
overflow the C stack of its node composer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .errors import UserError

MAX_BYTES = 1 << 20  # the largest shipped config file is 28 kB
MAX_VALUES = 100_000  # values after alias expansion (the shipped files hold at most a few thousand)
MAX_DEPTH = 64  # nesting levels (the shipped files nest at most 6)


def read_text(path: str | os.PathLike) -> str:
    """The file's text: at most MAX_BYTES, UTF-8, no NUL byte (one UserError line otherwise)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as e:
        raise UserError(f"config file {path} cannot be read ({e.strerror or type(e).__name__})") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"config file {path} is larger than {MAX_BYTES >> 20} MiB; a config file is a few kB of YAML")
    if b"\x00" in data:
        raise UserError(f"config file {path} is binary (NUL byte at offset {data.index(0)}), not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "save it as UTF-8") from None


def expanded_size(text: str, where: str = "config file") -> int:
    """How many values the YAML document(s) hold once every alias is expanded; UserError past
    MAX_VALUES or MAX_DEPTH, on a recursive alias and on invalid YAML."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    sizes: dict[str, int] = {}  # anchor -> expanded size of its value
    stack: list[list] = []  # open collections: [anchor, expanded size so far]
    total = 0

    def add(n: int) -> None:
        nonlocal total
        if stack:
            stack[-1][1] += n
        else:
            total += n
        if (stack[-1][1] if stack else total) > MAX_VALUES:
            raise UserError(f"{where} expands to more than {MAX_VALUES} values through YAML aliases (&anchor / *alias); "
                            "write the values out instead of nesting aliases")

    try:
        for ev in yaml.parse(text, Loader=loader):
            if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                stack.append([ev.anchor, 1])
                if len(stack) > MAX_DEPTH:
                    raise UserError(f"{where} nests more than {MAX_DEPTH} levels deep (line {ev.start_mark.line + 1})")
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, n = stack.pop()
                if anchor is not None:
                    sizes[anchor] = n
                add(n)
            elif isinstance(ev, yaml.ScalarEvent):
                if ev.anchor is not None:
                    sizes[ev.anchor] = 1
                add(1)
            elif isinstance(ev, yaml.AliasEvent):
                if ev.anchor not in sizes:
                    why = "refers to a collection that contains it" if any(a == ev.anchor for a, _ in stack) else "is undefined"
                    raise UserError(f"{where}: alias *{ev.anchor} (line {ev.start_mark.line + 1}) {why}")
                add(sizes[ev.anchor])
    except yaml.YAMLError as e:
        raise UserError(f"{where} is not valid YAML ({' '.join(str(e).split())})") from None
    return total


def check_config_file(path: str | os.PathLike) -> None:
    """Size, encoding, nesting and alias expansion of one config file (JSON or YAML)."""
    text = read_text(path)
    try:
        json.loads(text)  # JSON (which Snakemake also reads) has no aliases
        return
    except ValueError:
        pass
    expanded_size(text, f"config file {path}")


def check_config_files(paths: Iterable[str | os.PathLike]) -> None:
    for p in paths:
        check_config_file(p)


def command_line_configfiles(args: list[str]) -> list[str]:
    """The files a Snakemake command line names with --configfile / --configfiles (nargs="+")."""
    out, taking = [], False
    for a in args:
        if a == "--":
            break
        if a in ("--configfile", "--configfiles"):
            taking = True
            continue
        if a.startswith(("--configfile=", "--configfiles=")):
            out.append(a.split("=", 1)[1])
            taking = False
            continue
        if a.startswith("-"):
            taking = False
        elif taking:
            out.append(a)
    return out


def command_line_problem(args: list[str], cwd: str | os.PathLike = ".") -> str | None:
    """The first problem of a --configfile on a Snakemake command line, as one "config error: ..."
    line (None when there is none). Snakemake reads these files before the Snakefile runs and fails
    with a traceback on one that is not UTF-8 or nests deeper than Python's recursion limit, so
    bootstrap.py runs this first (`python -m unlearnbench.configfile ARGS`). Missing files are
    Snakemake's to report."""
    for f in command_line_configfiles(args):
        path = Path(cwd) / f
        if not path.is_file():
            continue
        try:
            check_config_file(path)
        except UserError as e:
            return f"config error: {e}"
    return None


if __name__ == "__main__":
    import sys

    problem = command_line_problem(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
    sys.exit(1 if problem else 0)
