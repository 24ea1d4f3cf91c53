"""Issue a month of N draft invoices (numbers, records, HTML and PDF); print the timings.

    .venv/bin/python bench/issue_bench.py [--invoices 10000] [--dir /tmp/issue_bench]

The drafts come from the pipeline itself: the sample generator's catalog with the
customers whose first month gives N invoices (11,111 customers for 10,000) and a few events
each, billed for one month through Dagster (as the demo does). That lake is built once into
``<dir>/template-<customers>`` and copied for every run, so each run issues the same N
drafts into an empty ``issued_*`` and ``reports/documents/``.

Printed: seconds for numbering and recording, seconds for rendering, documents/s per
successive thousand (from the PDFs' modification times: flat, or slowing as the folder
fills), the CPU seconds (user + sys) of rendering, of this process and its workers, per
PDF (less sensitive than wall time to a machine shared with other work, so the load
average is printed too), and the peak RSS of this process (``getrusage``) and of the
largest render worker (its ``VmHWM``, sampled twice a second: ``RUSAGE_CHILDREN`` would
report this process's size, which a spawned worker has for an instant before its exec).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

from storage.duck import connect
from storage.settings import Settings

MONTH = date(2026, 9, 1)
NOW = datetime(2026, 10, 20, tzinfo=UTC)  # every draft of September's run is due


def build_template(folder: Path, invoices: int, events: int) -> None:
    from assets.resources import OrbStore
    from cli.state import import_files
    from pipelines import runner
    from pipelines.definitions import build_definitions
    from sample_data.generate import CUSTOMERS_FILE, generate

    if (folder / "lake" / "invoices").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    generate(folder, invoices, events, MONTH, 1, seed=7)
    import_files(folder, [folder / CUSTOMERS_FILE])  # customers live in the state store
    settings = Settings.from_env(folder)
    os.environ.setdefault("ORB_MAX_EVENT_AGE_DAYS", "36500")
    store = OrbStore(data_dir=str(folder), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [MONTH], runner.instance())
    print(f"built {folder} in {time.perf_counter() - started:.1f}s "
          f"({settings.lake.root})")


def customers_for(invoices: int) -> int:
    """The sample customers whose first month gives ``invoices`` invoices: every tenth
    sample customer starts a month later (``sample_data/generate.py``)."""
    return next(c for c in range(invoices, 2 * invoices + 10) if c - c // 10 >= invoices)


def per_thousand(paths: list[Path], start: float) -> list[float]:
    """Documents/s over each successive thousand files, by modification time."""
    times = sorted(p.stat().st_mtime for p in paths)
    rates, last = [], start
    for i in range(999, len(times), 1000):
        rates.append(1000 / max(times[i] - last, 1e-9))
        last = times[i]
    return rates


def cpu_seconds() -> tuple[float, float]:
    """User + sys CPU seconds of this process, and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def sample_worker_peak(stop: threading.Event, peak: list[int]) -> None:
    """Keep in ``peak[0]`` the largest peak RSS (kB) of this process's children."""
    me = str(os.getpid())
    while not stop.wait(0.5):
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
            except (OSError, ValueError):
                continue  # gone, or a kernel thread
            if fields.get("PPid") == me and "VmHWM" in fields:
                peak[0] = max(peak[0], int(fields["VmHWM"].split()[0]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=0,
                        help="usage events to generate (default: 5 per customer)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/issue_bench"))
    parser.add_argument("--profile", type=Path, help="write a cProfile of issuing here")
    args = parser.parse_args()

    customers = customers_for(args.invoices)
    template = args.dir / f"template-{customers}"
    build_template(template, customers, args.events or 5 * customers)
    run = args.dir / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(template, run)

    from pricing_sql.run_catalog import billing_catalog
    from reports import documents as reports

    settings = Settings.from_env(run)
    lake = settings.lake
    catalog = billing_catalog(settings, MONTH)

    import invoicing.issuing as issuing
    started = time.time()
    t0 = time.perf_counter()
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    issued = issuing.issue_month(connect(), lake, MONTH, NOW)
    if args.profile:
        profiler.disable()
        profiler.dump_stats(str(args.profile))
    numbering = time.perf_counter() - t0
    render_started = time.time()
    cpu_before = cpu_seconds()
    load_before = os.getloadavg()[0]
    stop, worker_peak = threading.Event(), [0]
    sampler = threading.Thread(target=sample_worker_peak, args=(stop, worker_peak))
    sampler.start()
    t1 = time.perf_counter()
    # Renders the documents just issued (the step `orb invoices issue` runs after issuing).
    folder = reports.write_issued(lake, catalog, settings.issuer, MONTH, issued, NOW)
    rendering = time.perf_counter() - t1
    stop.set()
    sampler.join()
    cpu_self, cpu_workers = (after - before for after, before in zip(
        cpu_seconds(), cpu_before, strict=True))
    pdfs = sorted(folder.glob("*.pdf"))
    htmls = sorted(folder.glob("*.html"))
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # its build moves the seconds of a page (docs/capacity.md, "The interpreter")
    print(f"Python {sys.version.split()[0]}: {sys.executable}")
    print(f"documents issued: {len(issued)}; HTML {len(htmls)}, PDF {len(pdfs)}")
    print(f"numbering + recording: {numbering:.2f} s "
          f"({len(issued) / max(numbering, 1e-9):.0f} documents/s)")
    print(f"rendering HTML + PDF:  {rendering:.2f} s "
          f"({len(pdfs) / max(rendering, 1e-9):.1f} documents/s)")
    print(f"total:                 {numbering + rendering:.2f} s "
          f"({time.time() - started:.2f} s wall)")
    heads = sorted(lake.table_dir("issued_documents").glob("*=*/*.parquet"))
    if len(heads) >= 1000:  # one file per document: recording throughput per thousand
        print("recorded/s per thousand:", " ".join(f"{r:.1f}" for r in per_thousand(
            heads, started)))
    print("PDFs/s per thousand:  ", " ".join(f"{r:.1f}" for r in per_thousand(
        pdfs, render_started)))
    cores = os.cpu_count() or 1
    per_pdf = (cpu_self + cpu_workers) / max(len(pdfs), 1)
    print(f"rendering CPU (user + sys): {cpu_self + cpu_workers:.1f} s (workers "
          f"{cpu_workers:.1f} s, this process {cpu_self:.1f} s), {per_pdf * 1000:.1f} ms per "
          f"PDF: 10,000 PDFs on {cores} idle cores ~{per_pdf * 10_000 / cores:.0f} s")
    print(f"load average (1 min) before rendering {load_before:.1f}, after "
          f"{os.getloadavg()[0]:.1f}")
    print(f"peak RSS: this process {self_rss:.0f} MiB, largest render worker "
          f"{worker_peak[0] / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
