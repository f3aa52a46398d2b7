"""``python -m derivations [--json] [ID ...]``: the verification report.

Prints one row per identity (id, chapter, status, mutants refuted, seconds), or with ``--json`` a
JSON list of the identities' reports.  Exits 1 if any identity is not proved or any mutant
survives.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import Scope, verify_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m derivations", description=__doc__.split("\n")[0])
    parser.add_argument("ids", nargs="*", help="identity ids to check (default: all)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)

    reports = verify_all(args.ids or None)
    rows = [r.as_dict() for r in reports]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        header = (f"{'identity':32} {'chapter':16} {'status':9} {'scope':9} {'mutants':>8} {'seconds':>8}"
                  "  instance")
        print(header)
        print("-" * len(header))
        for r in reports:
            refuted = sum(m.passed for m in r.mutants)
            status = "verified" if r.verified else "FAILED"
            scope = r.identity.scope.value if r.identity.scope else "UNDECLARED"
            print(f"{r.identity.id:32} {r.identity.chapter:16} {status:9} {scope:9} "
                  f"{refuted:>3}/{len(r.mutants):<4} {r.seconds:8.3f}  {r.identity.instance}")
            if not r.certificate.passed:
                print(f"    check {r.certificate.status.value}: residual {r.certificate.residual}")
            for m in r.mutants:
                if not m.passed:
                    print(f"    mutant {m.name} SURVIVED ({m.status.value})")
        total = sum(r.seconds for r in reports)
        n_mut = sum(len(r.mutants) for r in reports)
        n_ok = sum(r.verified for r in reports)
        print("-" * len(header))
        print(f"{n_ok}/{len(reports)} identities verified, {n_mut} mutants, {total:.2f} s")
        counts = {s.value: sum(r.identity.scope is s for r in reports) for s in Scope}
        undeclared = sum(r.identity.scope is None for r in reports)
        print("scope: " + ", ".join(f"{n} {k}" for k, n in counts.items())
              + (f", {undeclared} UNDECLARED" if undeclared else ""))
    ok = all(r.verified and r.identity.scope is not None for r in reports)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
