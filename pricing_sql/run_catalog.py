"""The catalog a run reads: metrics, plans and coupons from the catalog folder (catalog as
code), customers and subscriptions from the state store (docs/state.md).

A billing run reads the store once, at its start, into a snapshot kept in the lake
(``take_snapshot``); every step of the run, and any later step for the same month, reads
that snapshot (``billing_catalog``), never the store and never YAML. Work that is not a
month's billing (ingestion, payments, the CLI's lookups) reads the store as it is now
(``current_catalog``).

A snapshot's catalog is built once per process and kept: a committed snapshot never
changes, and the monthly job runs its steps in one process (``pipelines/jobs.py``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pyarrow as pa

from billing.catalog import Catalog, CatalogError
from billing.charges import billing_windows
from billing.gc_pause import gc_paused
from pricing_sql.catalog_files import load_checked_catalog
from state import StateStore, lake_snapshot
from state.lake_snapshot import LakeSnapshot
from storage.lake import Lake
from storage.settings import Deployment

STATE_SECTIONS = ("customers", "subscriptions")


def plans_and_metrics(deployment: Deployment) -> Catalog:
    """The catalog folder, checked; customers and subscriptions in it are refused: they
    live in the state store (``orb state import FILE`` moves them there)."""
    catalog = load_checked_catalog(deployment.catalog_path)
    if catalog.customers or catalog.subscriptions:
        raise CatalogError([
            f"{deployment.catalog_path}: the catalog folder holds customers or subscriptions; "
            "they live in the state store now: import the file that holds them with "
            "`orb state import FILE` and move it out of the catalog folder"])
    return catalog


def take_snapshot(deployment: Deployment, month: date, run_id: str, *,
                  with_catalog: bool = False) -> LakeSnapshot:
    """Read the state store once and keep it in the lake as ``run_id``'s snapshot (the
    process keeps its tables in memory too: ``Lake.read_file``). With ``with_catalog``,
    the run's catalog is built from it while its tables are written, for the run's next
    steps in this process (``billing_catalog``): building it took as long as writing
    them, and the two share the machine's two cores (docs/capacity.md). The catalog
    folder is checked on a thread while the store is read: the check's trial runs in
    DuckDB and the read in SQLite, both outside the GIL. The month's billing windows are
    computed from the catalog as well, while the last tables are written."""
    lake = deployment.lake
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-check") as pool:
        plans = pool.submit(plans_and_metrics, deployment) if with_catalog else None

        def build(snapshot: LakeSnapshot) -> None:
            assert plans is not None
            catalog = _composed(plans.result(), lake.root, month, snapshot.snapshot_id,
                                snapshot.tables)
            billing_windows(catalog, month)  # the usage step's first need; kept on it

        with StateStore.open(deployment.state_store_url) as store:
            return lake_snapshot.take(store, lake, month, run_id,
                                      meanwhile=build if plans else None)


def billing_catalog(deployment: Deployment, month: date, run_id: str | None = None) -> Catalog:
    """The catalog of ``month``'s billing: ``run_id``'s snapshot of the store, else the
    month's newest. The same object for every step of a run, so that what is derived
    from it (billing windows) is computed once."""
    lake = deployment.lake
    return _composed(plans_and_metrics(deployment), lake.root, month,
                     lake_snapshot.find(lake, month, run_id))


def current_catalog(deployment: Deployment) -> Catalog:
    """The catalog with the store's customers and subscriptions as they are now; read
    again only when a row was written since (one query when nothing was)."""
    plans = plans_and_metrics(deployment)
    store = StateStore.shared(deployment.state_store_url)
    key = (deployment.state_store_url, store.last_recorded_at())
    built = _CURRENT.get(key)
    if built is not None and built[0] is plans:
        return built[1]
    catalog = _catalog(plans, store.snapshot().tables())
    _keep(_CURRENT, key, (plans, catalog))
    return catalog


# Catalogs built, by (lake root, month, snapshot id) and by (store URL, its newest row's
# instant), each with the parsed catalog folder it was built on; the newest KEPT of each.
Key = tuple[object, ...]
_BUILT: dict[Key, tuple[Catalog, Catalog]] = {}
_CURRENT: dict[Key, tuple[Catalog, Catalog]] = {}
KEPT = 4


def _composed(plans: Catalog, root: Path, month: date, snapshot_id: str,
              tables: dict[str, pa.Table] | None = None) -> Catalog:
    """``plans`` is the parsed catalog folder, the same object while the folder's files
    are unchanged (``catalog_files``); a committed snapshot never changes. ``tables``:
    the snapshot's, as it was taken (else read)."""
    key = (root, month, snapshot_id)
    built = _BUILT.get(key)
    if built is not None and built[0] is plans:
        return built[1]
    if tables is None:
        tables = lake_snapshot.read(Lake(root), month, snapshot_id).tables
    catalog = _catalog(plans, tables)
    _keep(_BUILT, key, (plans, catalog))
    return catalog


def _catalog(plans: Catalog, tables: dict[str, pa.Table]) -> Catalog:
    # Every part is a checked model already (the folder parsed, the snapshot's rows checked
    # when written): constructed, not validated again, which would re-run each
    # subscription's checks (2 s at 100,000 customers).
    with gc_paused():
        return Catalog.model_construct(
            metrics=plans.metrics, plans=plans.plans, coupons=plans.coupons,
            seller=plans.seller, taxes=plans.taxes,
            dimensional_price_groups=plans.dimensional_price_groups,
            customers=lake_snapshot.customers(tables["customers"]),
            subscriptions=lake_snapshot.subscriptions(tables["subscriptions"],
                                                      tables["subscription_phases"],
                                                      tables["subscription_changes"]))


def _keep(cache: dict[Key, tuple[Catalog, Catalog]], key: Key,
          value: tuple[Catalog, Catalog]) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > KEPT:
        del cache[next(iter(cache))]
