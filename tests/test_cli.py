"""The command line, run in-process against a FakeUphance served from another thread."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from uphance_async.cli import Progress, main
from uphance_async.pagination import StreamStats
from uphance_async.testing import FakeUphance

PASSWORD = "cli-password-123"


@pytest.fixture
def fake(thread_served: Callable[[FakeUphance], FakeUphance]) -> FakeUphance:
    return thread_served(FakeUphance(customers=150, page_size=20, password=PASSWORD, seed=8))


@pytest.fixture
def env(fake: FakeUphance, monkeypatch: pytest.MonkeyPatch) -> FakeUphance:
    for name in ("UPHANCE_TOKEN", "UPHANCE_EMAIL", "UPHANCE_PASSWORD", "UPHANCE_ORGANISATION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UPHANCE_TOKEN", fake.token)
    return fake


def test_export_jsonl_to_a_file(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "all.jsonl"
    code = main(
        ["customers", "export", "--status", "all", "-o", str(output), "--base-url", env.url]
    )
    assert code == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in records] == env.ids("all")
    assert records[0] == env.customer(records[0]["id"])
    err = capsys.readouterr().err
    assert f"exported {len(records)} customers from 8 pages" in err
    assert env.token not in err


def test_export_csv_to_stdout(env: FakeUphance, capsys: pytest.CaptureFixture[str]) -> None:
    agent = "agent2@agents.example.com"
    code = main(
        [
            "customers",
            "export",
            "--format",
            "csv",
            "--status",
            "all",
            "--agent-contact",
            agent,
            "--base-url",
            env.url,
        ]
    )
    assert code == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert [int(row[0]) for row in rows[1:]] == env.ids("all", agent)


def test_export_resumes_from_its_checkpoint(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "c.jsonl"
    output.write_text('{"id": 985700}\n{"id": 98')
    (tmp_path / "c.jsonl.checkpoint").write_text(
        json.dumps(
            {
                "format": "jsonl",
                "offset": len('{"id": 985700}\n'),
                "checkpoint": {"next_page": 1, "params": {"by_status": "all"}},
            }
        )
    )
    code = main(
        [
            "customers",
            "export",
            "--status",
            "all",
            "-o",
            str(output),
            "--resume",
            "--base-url",
            env.url,
        ]
    )
    assert code == 0
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert ids == [985700, *env.ids("all")]
    assert "resumed: exported" in capsys.readouterr().err


def test_sign_in_from_the_environment(
    fake: FakeUphance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("UPHANCE_TOKEN", raising=False)
    monkeypatch.setenv("UPHANCE_EMAIL", fake.email)
    monkeypatch.setenv("UPHANCE_PASSWORD", PASSWORD)
    monkeypatch.setenv("UPHANCE_ORGANISATION_ID", "9580")
    wanted = fake.ids()[4]
    assert main(["customers", "get", str(wanted), "--base-url", fake.url]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["id"] == wanted
    assert fake.requests[-1].organisation == 9580


def test_get_contacts_and_addresses_print_json(
    env: FakeUphance, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = env.ids()[2]
    record = env.customer(wanted)
    assert main(["customers", "get", record["people"][0]["email"], "--base-url", env.url]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == wanted
    assert main(["customers", "contacts", str(wanted), "--base-url", env.url]) == 0
    contacts = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in contacts] == [p["id"] for p in record["people"]]
    assert main(["customers", "addresses", str(wanted), "--base-url", env.url]) == 0
    assert json.loads(capsys.readouterr().out)[0]["line_1"] == record["addresses"][0]["line_1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["customers", "contacts", "abc"], "positive number"),
        (["customers", "get", "0"], "positive number"),
        (["customers", "get", "not an e-mail"], "e-mail"),
        (["customers", "export", "--resume"], "--output"),
        (["customers", "get", "5", "--base-url", "http://api.example.com"], "https"),
    ],
)
def test_usage_errors_exit_2(
    env: FakeUphance, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_credentials_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("UPHANCE_TOKEN", "UPHANCE_EMAIL", "UPHANCE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["customers", "get", "5"]) == 2
    assert "no credentials" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["customers", "export", "--status", "archived"])
    assert caught.value.code == 2


def test_unwritable_output_exits_1(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    output = tmp_path / "file" / "customers.jsonl"
    assert main(["customers", "export", "-o", str(output), "--base-url", env.url]) == 1
    assert "uphance-async:" in capsys.readouterr().err


def test_api_errors_exit_1_with_one_line(
    env: FakeUphance, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["customers", "get", "1", "--base-url", env.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("uphance-async: NotFoundError: HTTP 404")
    assert "Traceback" not in err
    assert main(["customers", "get", "1", "--base-url", env.url, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_wrong_password_exits_1_without_echoing_it(
    fake: FakeUphance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("UPHANCE_TOKEN", raising=False)
    monkeypatch.setenv("UPHANCE_EMAIL", fake.email)
    monkeypatch.setenv("UPHANCE_PASSWORD", "not-the-password-42")
    assert main(["customers", "get", "5", "--base-url", fake.url, "--debug"]) == 1
    captured = capsys.readouterr()
    assert "AuthenticationError" in captured.err
    assert "not-the-password-42" not in captured.err + captured.out


def test_demo_exports_every_customer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / "customers.jsonl"
    assert main(["demo", "--customers", "345", "--latency", "0", "--output", str(output)]) == 0
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert len(ids) == 345 == len(set(ids))
    assert ids == sorted(ids)
    assert "exported 345 customers from 4 pages" in capsys.readouterr().out
    assert [p.name for p in output.parent.iterdir()] == ["customers.jsonl"]


def test_demo_refuses_bad_numbers() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["demo", "--concurrency", "0"])
    assert caught.value.code == 2


class FakeTerminal:
    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_shows_pages_customers_rate_and_eta() -> None:
    terminal = FakeTerminal()
    progress = Progress(terminal)
    stats = StreamStats(pages_fetched=3, items_yielded=250, total_pages=10, total_count=1000)
    stats.started = stats.finished = None
    progress(stats, final=True)
    assert "3/10 pages" in terminal.text
    assert "250/1,000 customers" in terminal.text
    assert not Progress(object()).enabled
