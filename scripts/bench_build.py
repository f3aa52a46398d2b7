"""Time what the budgets in the README are about and print the figures.

* the symbolic suite (``python -m derivations``): budget 60 s;
* the test suite (``pytest``): budget 5 minutes;
* a cold book build (``_build`` removed, installs excluded): budget 8 minutes;
* a rebuild with nothing changed: budget 30 s, and no notebook re-executed.

Run with ``make bench-build``.  This removes ``_build``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return seconds, proc.stdout + proc.stderr


def main() -> None:
    rows = []
    wall, out = timed([sys.executable, "-m", "derivations", "--json"])
    checks = sum(r["seconds"] + sum(m["seconds"] for m in r["mutants"]) for r in json.loads(out[: out.rindex("]") + 1]))
    rows.append(("symbolic suite (python -m derivations)", wall, 60, f"{checks:.2f} s inside checks"))
    wall, out = timed([sys.executable, "-m", "pytest", "-q"])
    rows.append(("test suite (pytest)", wall, 300, out.strip().splitlines()[-1]))
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    wall, out = timed(["make", "book"])
    executed = out.count("Executing notebook using")
    rows.append(("cold book build (make book)", wall, 480, f"{executed} notebooks executed"))
    wall, out = timed(["make", "book"])
    executed = out.count("Executing notebook using")
    rows.append(("no-change rebuild (make book)", wall, 30, f"{executed} notebooks executed"))
    print(f"{'what':42} {'seconds':>8} {'budget':>7}  note")
    for name, seconds, budget, note in rows:
        flag = "" if seconds <= budget else "  OVER BUDGET"
        print(f"{name:42} {seconds:8.1f} {budget:7d}  {note}{flag}")


if __name__ == "__main__":
    main()
