"""Fault benchmark: real processes (a private PostgreSQL and Redis, gunicorn, Celery workers and beat) broken
as an operator would break them, through the API a client uses. Prints, per fault, the recovery time and the
counts (acknowledged vs stored, lost, duplicated, 5xx other than 503) beside the targets:
recovery <= 2 min, 0 lost, 0 duplicated, 0 5xx.

    FAULTS_PORT_BASE=9100 .venv/bin/python bench/faults.py

As root (PostgreSQL runs as the postgres user), on four ports from FAULTS_PORT_BASE (8421-8424 by default).

Default settings (sweep intervals, stall threshold, visibility timeout) unless the environment sets them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.harness import FAULTS, RECOVERY_TARGET, Stack, available


def main() -> int:
    reason = available()
    if reason:
        print(f"bench/faults.py cannot run here: {reason}")
        return 1
    stack = Stack().start()
    results = []
    try:
        for fault in FAULTS:
            results.append(fault(stack))
            if not results[-1].ok:
                stack.logs_print()
    finally:
        stack.stop()
    print(f"{'fault':<48} {'recovery':>10} {'ack':>5} {'stored':>6} {'lost':>5} {'dup':>4} {'5xx':>4} {'503':>4}")
    for r in results:
        recovery = "never" if r.recovery_seconds is None else f"{r.recovery_seconds:.1f} s"
        print(
            f"{r.name:<48} {recovery:>10} {r.acknowledged:>5} {r.stored:>6} {r.lost:>5} {r.duplicated:>4} "
            f"{r.server_errors:>4} {r.unavailable:>4}  {'ok' if r.ok else 'MISSED'}"
        )
        print(f"{'':<48} {r.notes}")
    print(f"{'target':<48} {f'<= {RECOVERY_TARGET:.0f} s':>10} {'':>5} {'= ack':>6} {0:>5} {0:>4} {0:>4} {'any':>4}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
