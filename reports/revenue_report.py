"""The monthly revenue report: reports/revenue/<YYYY-MM>.html, from the revenue tables of
the month and the eleven before it (revenue/compute.py, docs/revenue.md).

Tables show the exact Decimal amounts of the lake; the charts (matplotlib, Agg backend,
inline SVG with a fixed hash salt and no date, so the same tables give the same file) plot
them as floats.
"""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import matplotlib
import pyarrow.parquet as pq

from billing import periods
from reports.render import environment
from storage.lake import Lake, Row

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (the backend is chosen first)

HISTORY_MONTHS = 12
TOP_CUSTOMERS = 10
MOVEMENTS = ("new", "reactivation", "expansion", "contraction", "churn")
COLORS = {"new": "#2da44e", "reactivation": "#54aeff", "expansion": "#8ddb8c",
          "contraction": "#ff8182", "churn": "#cf222e"}

plt.rcParams.update({"svg.hashsalt": "orb-revenue", "svg.fonttype": "none",
                     "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def _rows(lake: Lake, table: str, months: list[date]) -> list[dict]:
    files = lake.files_in(table, "billing_month", months)
    return pq.read_table(files, partitioning=None).to_pylist() if files else []


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _label(month: date) -> str:
    return month.strftime("%b %Y")


def mrr_chart(currency: str, months: list[date], mrr: dict, movements: dict) -> str:
    """Stacked movements (bars) and MRR at month end (line) of one currency."""
    figure, axis = plt.subplots(figsize=(7.5, 2.8))
    labels = [_label(m) for m in months]
    up, down = [0.0] * len(months), [0.0] * len(months)
    for kind in MOVEMENTS:
        values = [float(movements.get((m, kind), 0)) for m in months]
        bottoms = [up[i] if v >= 0 else down[i] for i, v in enumerate(values)]
        axis.bar(labels, values, bottom=bottoms, color=COLORS[kind], label=kind, width=0.6)
        for i, v in enumerate(values):
            if v >= 0:
                up[i] += v
            else:
                down[i] += v
    axis.plot(labels, [float(mrr.get(m, 0)) for m in months], color="#1f2328", marker="o",
              label="MRR")
    axis.axhline(0, color="#d0d7de", linewidth=0.8)
    axis.set_title(f"MRR and its movements ({currency})", loc="left")
    axis.legend(ncols=6, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0, -0.12))
    return _svg(figure)


def recognition_chart(currency: str, rows: list[dict]) -> str:
    """Billed and recognized per month (bars) and the deferred balance (line)."""
    figure, axis = plt.subplots(figsize=(7.5, 2.6))
    labels = [_label(r["month"]) + (" *" if r["status"] == "scheduled" else "") for r in rows]
    positions = range(len(rows))
    axis.bar([p - 0.2 for p in positions], [float(r["billed"]) for r in rows], width=0.4,
             color="#0969da", label="billed")
    axis.bar([p + 0.2 for p in positions], [float(r["recognized"]) for r in rows], width=0.4,
             color="#8ddb8c", label="recognized")
    axis.plot(list(positions), [float(r["deferred"]) for r in rows], color="#bf8700",
              marker="o", label="deferred (closing)")
    axis.set_xticks(list(positions), labels)
    axis.set_title(f"Billed, recognized and deferred ({currency}); * scheduled", loc="left")
    axis.legend(ncols=3, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0, -0.12))
    return _svg(figure)


def collection_chart(currency: str, rows: list[dict]) -> str:
    figure, axis = plt.subplots(figsize=(7.5, 2.4))
    labels = [_label(r["billing_month"]) for r in rows]
    axis.bar(labels, [float(r["billed"]) for r in rows], color="#0969da", width=0.6,
             label="billed")
    axis.bar(labels, [float(r["collected"]) for r in rows], color="#2da44e", width=0.35,
             label="collected")
    axis.set_title(f"Billed vs collected, issued documents ({currency})", loc="left")
    axis.legend(ncols=2, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0, -0.12))
    return _svg(figure)


def usage_chart(months: list[date], rows: list[dict]) -> str:
    """One small panel per metric: its quantity in each run."""
    metrics = sorted({r["metric_id"] for r in rows})
    quantities = {(r["metric_id"], r["billing_month"]): r["quantity"] for r in rows}
    columns = min(len(metrics), 2)
    lines = -(-len(metrics) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(7.5, 1.9 * lines), squeeze=False)
    for index, metric in enumerate(metrics):
        axis = axes[index // columns][index % columns]
        axis.plot([_label(m) for m in months],
                  [float(quantities.get((metric, m), 0)) for m in months],
                  color="#8250df", marker="o")
        axis.set_title(metric, loc="left", fontsize=9)
        axis.tick_params(axis="x", labelsize=7, labelrotation=30)
    for index in range(len(metrics), lines * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.tight_layout()
    return _svg(figure)


def rejected_by_reason(con: duckdb.DuckDBPyConnection, lake: Lake, month: date) -> dict:
    """Rejected events in the month's UTC days, by reason."""
    files = lake.all_files("quarantine")
    if not files:
        return {}
    days = periods.days_of_month(month)
    rows = con.execute(
        "SELECT reject_reason, count(*) FROM read_parquet($files) "
        "WHERE event_date BETWEEN $first AND $last GROUP BY 1 ORDER BY 1",
        {"files": files, "first": days[0], "last": days[-1]},
    ).fetchall()
    return dict(rows)


def report_data(con: duckdb.DuckDBPyConnection, lake: Lake, month: date) -> dict:
    """Everything the template shows, per currency, from the lake's revenue tables."""
    months = [periods.add_months(month, -i) for i in range(HISTORY_MONTHS - 1, -1, -1)]
    mrr_rows = _rows(lake, "mrr", months)
    shown = [m for m in months if any(r["billing_month"] == m for r in mrr_rows)] or [month]
    movement_rows = _rows(lake, "mrr_movements", months)
    dimension_rows = _rows(lake, "revenue_by_dimension", [month])
    recognition_rows = [r for r in _rows(lake, "revenue_recognition", months)
                        if r["status"] == "actual" or r["billing_month"] == month]
    collected_rows = _rows(lake, "billed_vs_collected", months)
    cohort_rows = _rows(lake, "cohort_retention", months)
    usage_rows = _rows(lake, "usage_trends", shown)

    currencies = sorted({r["currency"] for r in mrr_rows + dimension_rows + recognition_rows
                         + collected_rows})
    sections = []
    for currency in currencies:
        mrr: defaultdict[date, Decimal] = defaultdict(Decimal)
        customers: defaultdict[date, int] = defaultdict(int)
        for r in mrr_rows:
            if r["currency"] == currency:
                mrr[r["billing_month"]] += r["mrr"]
                customers[r["billing_month"]] += 1
        movements: defaultdict[tuple[date, str], Decimal] = defaultdict(Decimal)
        counts: defaultdict[tuple[date, str], int] = defaultdict(int)
        for r in movement_rows:
            if r["currency"] == currency:
                movements[(r["billing_month"], r["movement"])] += r["amount"]
                counts[(r["billing_month"], r["movement"])] += 1
        previous = periods.add_months(month, -1)
        this_month = [r for r in mrr_rows if r["currency"] == currency
                      and r["billing_month"] == month]
        billed = {r["key"]: r["billed"] for r in dimension_rows
                  if r["currency"] == currency and r["dimension"] == "customer"}
        top = sorted(this_month, key=lambda r: (-r["mrr"], r["customer_id"]))[:TOP_CUSTOMERS]
        recognition = sorted((r for r in recognition_rows if r["currency"] == currency),
                             key=lambda r: r["month"])
        collected = sorted((r for r in collected_rows if r["currency"] == currency),
                           key=lambda r: r["billing_month"])
        cohorts = [r for r in cohort_rows if r["currency"] == currency]
        sections.append({
            "currency": currency,
            "mrr": mrr[month], "arr": 12 * mrr[month], "previous_mrr": mrr[previous],
            "change": mrr[month] - mrr[previous], "customers": customers[month],
            "movements": [{"movement": kind, "customers": counts[(month, kind)],
                           "amount": movements[(month, kind)]} for kind in MOVEMENTS],
            "trend": [{"month": m, "mrr": mrr[m], "arr": 12 * mrr[m], "customers": customers[m]}
                      for m in shown],
            "mrr_chart": mrr_chart(currency, shown, mrr, movements),
            "dimensions": {dimension: [r for r in dimension_rows if r["currency"] == currency
                                       and r["dimension"] == dimension]
                           for dimension in ("plan", "price", "metric")},
            "billed_total": sum(billed.values(), Decimal(0)),
            "top_customers": [{**r, "billed": billed.get(r["customer_id"], Decimal(0))}
                              for r in top],
            "recognition": recognition,
            "recognition_chart": recognition_chart(currency, recognition) if recognition
            else "",
            "collected": collected,
            "collection_chart": collection_chart(currency, collected) if collected else "",
            "cohorts": _triangle(cohorts),
        })
    return {
        "month": month.strftime("%Y-%m"),
        "sections": sections,
        "usage": sorted((r for r in usage_rows if r["billing_month"] == month),
                        key=lambda r: r["metric_id"]),
        "usage_chart": usage_chart(shown, usage_rows) if usage_rows else "",
        "rejected": rejected_by_reason(con, lake, month),
    }


def _triangle(rows: list[dict]) -> dict:
    """Cohort rows as a triangle: NRR by cohort and months since its start."""
    ages = sorted({r["months_since_start"] for r in rows})
    cohorts: dict[date, Row] = {}
    for r in sorted(rows, key=lambda r: (r["cohort_month"], r["months_since_start"])):
        cohort = cohorts.setdefault(r["cohort_month"], {"cohort_month": r["cohort_month"],
                                                        "nrr": {}})
        cohort["nrr"][r["months_since_start"]] = r["nrr"]
        if r["months_since_start"] == 0:
            cohort["customers"], cohort["starting_mrr"] = r["customers"], r["starting_mrr"]
        cohort.setdefault("customers", r["customers"])
        cohort.setdefault("starting_mrr", r["starting_mrr"])
    return {"ages": ages, "cohorts": list(cohorts.values())}


def render_revenue_report(data: dict) -> str:
    return environment().get_template("revenue_report.html.j2").render(**data)


def write_revenue_report(con: duckdb.DuckDBPyConnection, lake: Lake,
                         month: date) -> tuple[Path, dict[str, str]]:
    """Render the month's report to reports/revenue/<YYYY-MM>.html; returns the path and
    each currency's MRR."""
    data = report_data(con, lake, month)
    folder = lake.reports / "revenue"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['month']}.html"
    path.write_text(render_revenue_report(data), encoding="utf-8")
    return path, {s["currency"]: str(s["mrr"]) for s in data["sections"]}
