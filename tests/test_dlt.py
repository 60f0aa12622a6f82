"""The dlt source and `customers load` against FakeUphance, into real DuckDB files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

dlt = pytest.importorskip("dlt")

from uphance_async.cli import main  # noqa: E402
from uphance_async.dlt import columns_of, uphance_source  # noqa: E402
from uphance_async.models import Customer  # noqa: E402
from uphance_async.testing import FakeUphance  # noqa: E402


@pytest.fixture(autouse=True)
def dlt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dlt keeps pipeline state under DLT_DATA_DIR: one per test."""
    home = tmp_path / "dlt-home"
    monkeypatch.setenv("DLT_DATA_DIR", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def into(database: Path, dataset: str) -> Any:
    """A pipeline loading into the DuckDB file ``database``."""
    return dlt.pipeline(
        f"uphance_{database.stem}",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name=dataset,
    )


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.sql(sql).fetchall()


def test_two_runs_merge_on_id_and_a_change_updates_in_place(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    server = thread_served(FakeUphance(customers=400, page_size=50, seed=3))
    database = tmp_path / "merged.duckdb"
    pipeline = into(database, "uphance")
    source = uphance_source(token=server.token, base_url=server.url)
    pipeline.run(source)
    assert query(database, "select count(*), count(distinct id) from uphance.customers") == [
        (400, 400)
    ]
    tables = {row[0] for row in query(database, "select table_name from information_schema.tables")}
    assert {"customers__people", "customers__addresses", "customers__invoices"} <= tables
    columns = {row[0] for row in query(database, "describe uphance.customers")}
    assert {"last_order__id", "last_order__status", "notes", "vat_number"} <= columns
    changed = server.ids("all")[5]
    server.patch_customer(changed, {"name": "Renamed Ltd"})
    pipeline.run(uphance_source(token=server.token, base_url=server.url))
    assert query(database, "select count(*), count(distinct id) from uphance.customers") == [
        (400, 400)
    ]
    assert query(database, f"select name from uphance.customers where id = {changed}") == [
        ("Renamed Ltd",)
    ]
    people = query(database, "select count(*) from uphance.customers__people")[0][0]
    assert people == sum(len(server.customer(i)["people"]) for i in server.ids("all"))


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
    assert query(database, "select count(*) from u.customers") == [(60,)]


def test_columns_are_declared_from_the_model() -> None:
    columns = columns_of(Customer)
    assert columns["id"] == {"data_type": "bigint", "nullable": False}
    assert columns["last_order__confirmed_at"]["data_type"] == "timestamp"
    assert "people" not in columns


def test_the_load_command_end_to_end(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path, dlt_home: Path
) -> None:
    server = thread_served(FakeUphance(customers=250, page_size=50, seed=9))
    env = {**os.environ, "UPHANCE_TOKEN": server.token, "DLT_DATA_DIR": str(dlt_home)}
    command = [sys.executable, "-m", "uphance_async", "customers", "load", "--base-url", server.url]
    for _ in range(2):
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        assert "loaded 250 customers into uphance.duckdb" in done.stderr
    database = tmp_path / "uphance.duckdb"
    assert query(
        database, "select count(*), count(distinct id) from uphance.uphance.customers"
    ) == [(250, 250)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dlt-home", "uphance.duckdb"]
    wrong = subprocess.run(
        command,
        cwd=tmp_path,
        env={**env, "UPHANCE_TOKEN": "wrong"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 1
    (line,) = wrong.stderr.strip().splitlines()
    assert line.startswith("uphance-async: AuthenticationError: HTTP 401 for GET /customers")


def test_load_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("UPHANCE_TOKEN", "UPHANCE_EMAIL", "UPHANCE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["customers", "load"]) == 2
    assert "no credentials" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["customers", "load", "--status", "archived"])
    assert caught.value.code == 2
