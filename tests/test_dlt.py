"""The dlt source and `customers load` against FakeUphance, into real DuckDB files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

dlt = pytest.importorskip("dlt")

# Real DuckDB loads, several killed: the slow session (``pytest -m slow``) runs them.
pytestmark = pytest.mark.slow

from uphance_async.cli import main  # noqa: E402
from uphance_async.dlt import TABLES, columns_of, uphance_source  # noqa: E402
from uphance_async.models import Customer  # noqa: E402
from uphance_async.testing import FakeUphance  # noqa: E402

LOAD = [sys.executable, "-m", "uphance_async", "customers", "load", "--status", "all"]
CHILDREN = [table for table in TABLES if table != "customers"]


@pytest.fixture(autouse=True)
def dlt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dlt keeps pipeline state under DLT_DATA_DIR unless told otherwise: one per test."""
    home = tmp_path / "dlt-home"
    monkeypatch.setenv("DLT_DATA_DIR", str(home))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.chdir(tmp_path)
    return home


def into(database: Path, dataset: str) -> Any:
    """A pipeline of the user's own, loading into the DuckDB file ``database``."""
    return dlt.pipeline(
        f"uphance_{database.stem}",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name=dataset,
    )


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.sql(sql).fetchall()


def ids_in(database: Path, dataset: str = "uphance_data") -> list[int]:
    return [row[0] for row in query(database, f"select id from {dataset}.customers order by id")]


def orphans(database: Path, dataset: str = "uphance_data") -> int:
    return sum(
        query(
            database,
            f"select count(*) from {dataset}.{table} t left join {dataset}.customers c "
            "on t.customer_id = c.id where c.id is null",
        )[0][0]
        for table in CHILDREN
    )


def people(server: FakeUphance) -> int:
    return sum(len(server.customer(i)["people"]) for i in server.ids("all"))


def load(server: FakeUphance, folder: Path, *more: str, token: str | None = None) -> Any:
    env = {**os.environ, "UPHANCE_TOKEN": token or server.token}
    return subprocess.run(
        [*LOAD, "--base-url", server.url, *more],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_load_mirrors_the_tenant_deletes_included(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=400, page_size=50, seed=3))
    first = load(server, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "loaded 400 customers into uphance.duckdb (dataset uphance_data)" in first.stderr
    database = tmp_path / "uphance.duckdb"
    assert ids_in(database) == sorted(server.ids("all"))
    gone = server.delete_customers(3, at=10)
    added = server.insert_customers(2, at=0)
    changed = server.ids("all")[50]
    server.patch_customer(changed, {"name": "Renamed Ltd", "people": []})
    second = load(server, tmp_path)
    assert second.returncode == 0, second.stderr
    assert ids_in(database) == sorted(server.ids("all"))
    assert not set(gone) & set(ids_in(database))
    assert set(added) <= set(ids_in(database))
    name = query(database, f"select name from uphance_data.customers where id = {changed}")
    assert name == [("Renamed Ltd",)]
    assert query(
        database,
        f"select count(*) from uphance_data.customers__people where customer_id = {changed}",
    ) == [(0,)]
    assert query(database, "select count(*) from uphance_data.customers__people") == [
        (people(server),)
    ]
    assert orphans(database) == 0
    # State lives beside the file; nothing else is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".uphance.duckdb.dlt",
        "uphance.duckdb",
    ]


def test_money_timestamps_and_ids_are_typed_in_every_table(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=150, page_size=50, seed=4))
    assert load(server, tmp_path, "-q").returncode == 0
    database = tmp_path / "uphance.duckdb"

    def types(table: str) -> dict[str, str]:
        return dict(
            query(database, f"select column_name, column_type from (describe uphance_data.{table})")
        )

    customers = types("customers")
    assert customers["id"] == "BIGINT"
    assert customers["last_order__confirmed_at"] == "TIMESTAMP WITH TIME ZONE"
    invoices = types("customers__invoices")
    assert invoices["grand_total"] == "DECIMAL(38,9)"
    assert invoices["customer_id"] == invoices["id"] == "BIGINT"
    assert types("customers__outstanding_amounts")["amount"] == "DECIMAL(38,9)"
    total = query(database, "select sum(amount) from uphance_data.customers__purchase_amounts")
    expected = sum(
        float(amount["amount"])
        for i in server.ids("all")
        for amount in server.customer(i)["purchase_amounts"]
    )
    assert float(total[0][0]) == pytest.approx(expected)


def test_a_crawl_that_ends_in_drift_deletes_nothing(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=300, page_size=50, seed=5))
    assert load(server, tmp_path, "-q").returncode == 0
    database = tmp_path / "uphance.duckdb"
    before = ids_in(database)
    server.change_every(1, delete=1)  # never holds still
    failed = load(server, tmp_path, "-q")
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith("uphance-async: DriftError:")
    assert ids_in(database) == before


def test_a_failed_first_load_leaves_nothing(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=60, page_size=50))
    wrong = load(server, tmp_path, token="wrong")
    assert wrong.returncode == 1
    (line,) = wrong.stderr.strip().splitlines()
    assert line.startswith("uphance-async: AuthenticationError: HTTP 401 for GET /customers")
    assert [p.name for p in tmp_path.iterdir()] == []


def until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came"
        time.sleep(0.01)


@pytest.mark.parametrize("moment", ["extract", "normalize...", "load..."])
def test_a_killed_load_never_stales_the_next(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path, moment: str
) -> None:
    server = thread_served(FakeUphance(customers=2000, page_size=50, seed=6))
    assert load(server, tmp_path, "-q").returncode == 0
    server.latency = 0.01
    process = subprocess.Popen(
        [*LOAD, "--base-url", server.url],
        cwd=tmp_path,
        env={**os.environ, "UPHANCE_TOKEN": server.token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    if moment == "extract":
        asked = len(server.requests)
        until(lambda: len(server.requests) > asked + 5)
    else:
        for line in process.stderr:
            if line.rstrip().endswith(moment):
                break
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    server.latency = 0.0
    gone = server.delete_customers(5)
    again = load(server, tmp_path)
    assert again.returncode == 0, again.stderr
    database = tmp_path / "uphance.duckdb"
    assert ids_in(database) == sorted(server.ids("all"))
    assert not set(gone) & set(ids_in(database))
    assert orphans(database) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".uphance.duckdb.dlt", "uphance.duckdb"]


def test_ctrl_c_is_one_line_and_exit_130(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=3000, page_size=50, latency=0.02))
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "runpy.run_module('uphance_async', run_name='__main__')",
            *LOAD[3:],
            "--base-url",
            server.url,
            "-q",
        ],
        cwd=tmp_path,
        env={**os.environ, "UPHANCE_TOKEN": server.token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    until(lambda: len(server.requests) > 5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert err.strip().splitlines() == ["uphance-async: interrupted"]
    assert process.returncode == 130
    assert [p.name for p in tmp_path.iterdir()] == []  # an interrupted first load: nothing


def test_progress_shows_every_phase_and_quiet_shows_none(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=120, page_size=50))
    shown = load(server, tmp_path).stderr.splitlines()
    assert shown[:2] == ["extract: 120/120 customers", "normalize..."]
    assert shown[2].startswith("load: ")
    assert shown[2].endswith(" rows into 7 tables...")
    assert shown[3].startswith("done in ")
    assert shown[4].startswith("loaded 120 customers")
    assert len(shown) == 5
    quiet = load(server, tmp_path, "--quiet").stderr.splitlines()
    assert len(quiet) == 1
    assert quiet[0].startswith("loaded 120 customers")


def test_two_databases_with_default_names_keep_their_own_state(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    servers = [thread_served(FakeUphance(customers=count, page_size=50)) for count in (70, 90)]
    for server, folder in zip(servers, ("a", "b"), strict=True):
        (tmp_path / folder).mkdir()
        for _ in range(2):
            done = load(server, tmp_path / folder, "-q")
            assert done.returncode == 0, done.stderr
        assert ids_in(tmp_path / folder / "uphance.duckdb") == sorted(server.ids("all"))
    assert not (tmp_path / "dlt-home").exists()


def test_load_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("UPHANCE_TOKEN", "UPHANCE_EMAIL", "UPHANCE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["customers", "load"]) == 2
    assert "no credentials" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["customers", "load", "--status", "archived"])
    assert caught.value.code == 2
    monkeypatch.setenv("UPHANCE_TOKEN", "t")
    assert main(["customers", "load", "--dataset", "uphance"]) == 2
    assert "also the name of uphance.duckdb's catalog" in capsys.readouterr().err
    assert main(["customers", "load", "--database", "missing/w.duckdb"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_source_merges_in_a_users_own_pipeline(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=400, page_size=50, seed=3))
    database = tmp_path / "merged.duckdb"
    pipeline = into(database, "uphance")
    pipeline.run(uphance_source(token=server.token, base_url=server.url, status="all"))
    assert ids_in(database, "uphance") == sorted(server.ids("all"))
    changed = server.ids("all")[5]
    server.patch_customer(
        changed, {"name": "Renamed Ltd", "people": server.customer(changed)["people"][:1]}
    )
    pipeline.run(uphance_source(token=server.token, base_url=server.url, status="all"))
    assert ids_in(database, "uphance") == sorted(server.ids("all"))
    assert query(database, f"select name from uphance.customers where id = {changed}") == [
        ("Renamed Ltd",)
    ]
    assert query(database, "select count(*) from uphance.customers__people") == [(people(server),)]
    assert query(
        database,
        "select data_type from information_schema.columns where table_schema = 'uphance' "
        "and table_name = 'customers__invoices' and column_name = 'grand_total'",
    ) == [("DECIMAL(38,9)",)]


def test_the_source_selects_the_organisation_with_a_token(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=60, page_size=50))
    pipeline = into(tmp_path / "org.duckdb", "u")
    pipeline.run(uphance_source(token=server.token, base_url=server.url, organisation_id=9580))
    assert any(r.path == "/organisations/set_current_org" for r in server.requests)
    assert {r.organisation for r in server.requests if r.path == "/customers"} == {9580}


def test_other_lists_load_incrementally(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=200, page_size=50, seed=3))
    database = tmp_path / "lists.duckdb"
    pipeline = into(database, "u")
    options: dict[str, Any] = {
        "token": server.token,
        "base_url": server.url,
        "resources": ("invoices",),
    }
    pipeline.run(uphance_source(**options))
    assert query(database, "select count(*) from u.invoices") == [(len(server.invoices()),)]
    before = len(server.requests)
    pipeline.run(uphance_source(**options))
    since = {r.query.get("since_id") for r in server.requests[before:]}
    assert since == {str(max(i["id"] for i in server.invoices()))}
    assert query(database, "select count(*) from u.invoices") == [(len(server.invoices()),)]
    with pytest.raises(ValueError, match="unknown resources"):
        uphance_source(token="t", resources=("orders",))


def test_credentials_come_from_dlt_config(
    thread_served: Callable[[FakeUphance], FakeUphance],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = thread_served(FakeUphance(customers=60, page_size=50))
    monkeypatch.setenv("SOURCES__UPHANCE__TOKEN", server.token)
    monkeypatch.setenv("SOURCES__UPHANCE__BASE_URL", server.url)
    database = tmp_path / "config.duckdb"
    pipeline = into(database, "u")
    pipeline.run(uphance_source())
    assert query(database, "select count(*) from u.customers") == [(len(server.ids()),)]


def test_columns_are_declared_from_the_model() -> None:
    columns = columns_of(Customer)
    assert columns["id"] == {"data_type": "bigint", "nullable": False}
    assert columns["last_order__confirmed_at"]["data_type"] == "timestamp"
    assert columns["last_order__confirmed_at"].get("timezone") is True
    assert "people" not in columns
    assert TABLES[0] == "customers"
    assert "customers__people" in TABLES


def test_amounts_beyond_the_column_round_or_are_named(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=60, page_size=50, seed=2))
    odd = server.ids("all")[3]
    server.patch_customer(odd, {"invoices": [{"id": 1, "grand_total": "1.12345678951"}]})
    assert load(server, tmp_path, "-q").returncode == 0
    database = tmp_path / "uphance.duckdb"
    total = query(
        database,
        f"select grand_total from uphance_data.customers__invoices where customer_id = {odd}",
    )
    assert str(total[0][0]) == "1.123456790"
    server.patch_customer(odd, {"invoices": [{"id": 1, "grand_total": "1e40"}]})
    failed = load(server, tmp_path, "-q")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"uphance-async: RecordEncodingError: customer {odd} cannot be loaded: Decimal('1E+40') "
        "at $.invoices[0].grand_total does not fit the warehouse column (decimal); ask Uphance "
        "to fix the record"
    ]
    assert ids_in(database) == sorted(server.ids("all"))
