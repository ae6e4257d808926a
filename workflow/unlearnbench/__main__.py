"""Command line:
  python -m unlearnbench methods                       every registered method, its data access and artefacts
  python -m unlearnbench audit [results] [--json FILE] environment and provenance audit (see audit.py)
  python -m unlearnbench probe [portable|native]        digests of every kernel family under a numerics mode
  python -m unlearnbench retune ENTRY… [--write] [--configfile F] [-- SNAKEMAKE ARGS]
                                                       re-derive tuning entries, compare with the lock (tuning.py)
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m unlearnbench", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("audit", help="compare env files, the lock, the running environment and every artefact's provenance")
    a.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    a.add_argument("--json", help="also write the findings as JSON to this file")
    a.add_argument("--repo", default=None, help="the checkout whose envs/, requirements.txt and lock are compared")
    sub.add_parser("methods", help="list every registered method with its data access, artefacts and summary")
    pr = sub.add_parser("probe", help="digests of every kernel family the pipeline uses, under a numerics mode")
    pr.add_argument("mode", nargs="?", default="portable", choices=["portable", "native"])
    pr.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("retune", help="re-derive tuning entries (rule tune) and print the difference against the lock")
    r.add_argument("entries", nargs="*", help="tuning entries (config group `tuning`)")
    r.add_argument("--write", action="store_true", help="record the derived values in the lock files")
    r.add_argument("--configfile", action="append", default=[], help="an overlay, as for snakemake")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # retune: passed on to snakemake
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.cmd == "probe":
        from .probe import run_probe

        return run_probe(args.mode, args.threads)
    if args.cmd == "retune":
        from .errors import UserError
        from .tuning import retune

        try:
            return retune(args.entries, args.write, args.configfile, extra)
        except UserError as e:  # e.g. no tuning result where Snakemake was told to write it
            print(f"retune: {e}", file=sys.stderr)
            return 2
    if args.cmd == "methods":
        return list_methods_table()
    from .infra.audit import run_audit

    return run_audit(args.results, args.json, args.repo)


def _summary(doc: str) -> str:
    """The first sentence of a docstring's first paragraph (at most 140 characters)."""
    import re

    para = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.match(r"(.+?[.:])(\s|$)", para)
    text = (m.group(1) if m else para).rstrip(":")
    return text if len(text) <= 140 else text[:137] + "..."


def list_methods_table() -> int:
    """A Markdown table of the registry (the README points here instead of keeping its own list)."""
    from .methods import create_method, get_method, list_methods

    print("| method | access (defaults) | artefacts | supports | what it is |")
    print("|---|---|---|---|---|")
    for name in list_methods():
        cls = get_method(name)
        m = create_method({"method": name})
        doc = _summary(cls.__doc__ or __import__(cls.__module__, fromlist=["x"]).__doc__ or "")
        print(f"| `{name}` | {m.access().label} | {', '.join(m.needs()) or '—'} | {', '.join(sorted(cls.supports))} | {doc} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
