"""The draft documents' render, killed right before its N-th rename.

    python -m tests.killed_render PLAN.json

``PLAN.json``: ``{"issuer": I, "runs": [{"data_dir": D, "kill_at": N}]}``. This process
imports the code once, then for each run forks a child that renders October's drafts of
D for issuer I (``render``), every ``os.replace`` counted (each draft file, and the
folder's record of fingerprints, is renamed into place), and ends with ``os._exit``, as
``kill -9`` would, at rename N (from 0). N = -1 renders whole. Each run's exit status is
written back into the plan as ``status``. As tests/killed_run.py, forking from a process
that has only imported the code."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pricing_sql.run_catalog import billing_catalog
from reports.documents import DraftsWritten, render_drafts
from storage.billing_runs import completed_runs
from storage.duck import connect
from storage.settings import Settings
from tests.killed_run import KILLED
from tests.scenario import OCTOBER


def render(data_dir: str | Path, issuer: str) -> DraftsWritten:
    """October's drafts of ``data_dir``, as the ``invoice_documents`` asset renders them."""
    settings = Settings(data_dir=str(data_dir))
    lake = settings.lake
    catalog = billing_catalog(settings, OCTOBER, next(iter(completed_runs(lake, OCTOBER)), None))
    return render_drafts(connect(), lake, catalog, issuer, OCTOBER)


def _child(data_dir: str, issuer: str, kill_at: int) -> None:
    replace = os.replace
    count = 0

    def killable_replace(source: object, target: object) -> None:
        nonlocal count
        if count == kill_at:
            os._exit(KILLED)
        count += 1
        replace(source, target)  # type: ignore[arg-type]

    os.replace = killable_replace  # type: ignore[assignment]
    render(data_dir, issuer)


def main(plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    for run in plan["runs"]:
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                _child(run["data_dir"], plan["issuer"], run["kill_at"])
                status = 0
            finally:
                os._exit(status)
        run["status"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    Path(plan_file).write_text(json.dumps(plan))


if __name__ == "__main__":
    main(sys.argv[1])
