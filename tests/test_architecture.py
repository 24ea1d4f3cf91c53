"""The stage contracts bite: a wrong import or an untyped function in a strict package fails
`make test`, and no other installed distribution provides a stage's package name
(docs/architecture.md)."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("billing", "storage", "state", "pricing_sql", "ingestion", "invoicing", "payments",
          "revenue", "reports", "webhooks", "assets", "pipelines", "cli", "api", "sample_data")
BIN = Path(sys.executable).parent


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the stage packages and pyproject.toml, to plant a violation in."""
    for stage in STAGES:
        shutil.copytree(ROOT / stage, tmp_path / stage,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def _run(tool: str, tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=tree, capture_output=True, text=True,
                          env={"PATH": str(BIN), "PYTHONPATH": str(tree)}, timeout=300)


def test_the_contracts_hold_on_the_tree_as_it_is(tree: Path):
    assert _run("lint-imports", tree, "--no-cache").returncode == 0


@pytest.mark.parametrize(("module", "planted", "contract", "chain"), [
    ("billing/money.py", "from invoicing import assembly",
     "Stages import one way: from the pure domain up to the CLI",
     "billing.money -> invoicing.assembly"),
    ("storage/lake.py", "import dagster",
     "Only assets, pipelines and the CLI know Dagster", "storage.lake -> dagster"),
    ("invoicing/issuing.py", "import stripe",
     "Only payments talks to Stripe", "invoicing.issuing -> stripe"),
    # the state store sits above storage and below rating: it takes the catalog's plans
    # and coupons as an argument rather than reading the catalog folder
    ("state/store.py", "from pricing_sql import catalog_files",
     "Stages import one way: from the pure domain up to the CLI",
     "state.store -> pricing_sql.catalog_files"),
    ("state/store.py", "import dagster",
     "Only assets, pipelines and the CLI know Dagster", "state.store -> dagster"),
])
def test_a_planted_import_breaks_its_contract(tree: Path, module: str, planted: str,
                                              contract: str, chain: str):
    with open(tree / module, "a") as source:
        source.write(f"\n{planted}  # noqa\n")
    result = _run("lint-imports", tree, "--no-cache")
    assert result.returncode == 1
    assert f"{contract} BROKEN" in result.stdout
    assert chain in result.stdout


def test_an_untyped_function_in_the_domain_fails_the_type_check(tree: Path):
    """billing/ and pricing_sql/ are checked strictly: an unannotated def is an error there,
    and fine in a package on mypy's default settings."""
    modules = ("billing/money.py", "pricing_sql/sql/__init__.py", "reports/render.py")
    for module in modules:
        with open(tree / module, "a") as source:
            source.write("\n\ndef planted(x):\n    return x\n")
    result = _run("mypy", tree, "--no-incremental", *modules)
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert sorted(line.split(":")[0] for line in errors) == [
        "billing/money.py", "pricing_sql/sql/__init__.py"]
    assert all("Function is missing a type annotation  [no-untyped-def]" in line
               for line in errors)


def test_each_stage_is_installed_by_this_distribution_alone():
    providers = importlib.metadata.packages_distributions()
    for stage in STAGES:
        assert set(providers.get(stage, [])) == {"orb-on-duckdb"}, stage
    # Orb's official SDK is imported as `orb`; no stage may take that name.
    assert "orb-on-duckdb" not in providers.get("orb", [])


def test_the_image_copies_every_stage():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines()
              if line.startswith("COPY ") and len(line.split()) == 3}
    assert copied >= set(STAGES)


def test_every_table_view_and_macro_the_pipelines_sql_makes_is_temp():
    """In-memory connections share the process's one DuckDB database (storage/duck.py):
    only TEMP objects stay a connection's own, so the SQL files make nothing else."""
    made = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(TABLE|VIEW|MACRO)\b", re.IGNORECASE)
    files = [path for path in sorted(ROOT.glob("*/**/*.sql"))
             if not {".venv", "tests"} & set(path.relative_to(ROOT).parts)]
    assert len(files) > 40 and made.search("CREATE OR REPLACE TABLE t AS SELECT 1")
    shared = [f"{path.relative_to(ROOT)}: CREATE {match.group(1)}"
              for path in files for match in made.finditer(path.read_text())]
    assert shared == []
