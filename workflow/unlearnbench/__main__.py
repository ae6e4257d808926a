"""Command line: `python -m unlearnbench audit [results] [--json FILE]` (see audit.py)."""

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
    args = ap.parse_args(argv)
    from .audit import run_audit

    return run_audit(args.results, args.json, args.repo)


if __name__ == "__main__":
    sys.exit(main())
