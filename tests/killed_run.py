"""The ``orb`` command, killed right before its N-th write of a lake file.

    python -m tests.killed_run PLAN.json

``PLAN.json``: ``{"args": [...], "runs": [{"kill_at": N, "data_dir": D, "writes": W}]}``.
This process imports the ``orb`` command once, then for each run forks a child that runs
``orb <args>`` (``{data_dir}`` in an argument stands for D) and appends the table of
each lake file it is about to write (``Lake.write_file_now``, which every table write goes
through) to the file W. At write N (counted from 0) the child ends with
``os._exit(KILLED)``, as ``kill -9`` would end it: no ``finally``, no ``atexit``,
nothing flushed. N = -1 runs the command whole: that is how a test finds every write
point of a run. Each run's exit status is written back into the plan as ``status``.
Forking from a process that has only imported the code spares each run the imports.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from storage.lake import Lake

KILLED = 137  # the status a shell reports for a process killed by SIGKILL


def _child(args: list[str], kill_at: int, writes: str) -> int:
    """Run ``orb args`` with writes counted; its exit status (if not killed)."""
    write_file = Lake.write_file_now
    count = 0

    def killable_write(self: Lake, table: str, *rest: object, **options: object) -> Path:
        nonlocal count
        if count == kill_at:
            os._exit(KILLED)
        count += 1
        with open(writes, "a", encoding="utf-8") as log:
            log.write(table + "\n")
        return write_file(self, table, *rest, **options)  # type: ignore[arg-type]

    Lake.write_file_now = killable_write  # type: ignore[method-assign]
    from cli.main import main as orb

    try:
        orb(args)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0


def main(plan_file: str) -> None:
    import cli.commands  # noqa: F401  (orb bill and its heavy imports, once, before forking)

    plan = json.loads(Path(plan_file).read_text())
    for run in plan["runs"]:
        args = [arg.replace("{data_dir}", run["data_dir"]) for arg in plan["args"]]
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = _child(args, run["kill_at"], run["writes"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        run["status"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    Path(plan_file).write_text(json.dumps(plan))


if __name__ == "__main__":
    main(sys.argv[1])
