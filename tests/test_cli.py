"""The command line, run in-process against a FakeUphance served from another thread."""

from __future__ import annotations

import csv
import json
import time
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


def export_all(env: FakeUphance, output: Path) -> list[str]:
    """The command line that exports every customer of ``env`` to ``output``."""
    return ["customers", "export", "--status", "all", "-o", str(output), "--base-url", env.url]


def fail_after(requests: int) -> Callable[[FakeUphance], None]:
    """A server hook that answers 503 to everything from the ``requests``-th request on."""

    def hook(server: FakeUphance) -> None:
        if len(server.requests) >= requests:
            server.fault_rate, server.faults = 1.0, ("503",)

    return hook


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
    argv = export_all(env, output)

    env.on_request = fail_after(3)
    assert main([*argv, "--max-attempts", "1"]) == 1
    assert "ServerError" in capsys.readouterr().err
    assert not output.exists()
    env.on_request, env.fault_rate = None, 0.0
    assert main([*argv, "--resume"]) == 0
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert ids == env.ids("all")
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
        (["customers", "contacts", "abc"], "positive whole number"),
        (["customers", "get", "0"], "positive whole number"),
        (["customers", "get", "not an e-mail"], "e-mail"),
        (["customers", "export", "--resume"], "--output"),
        (["customers", "get", "5", "--base-url", "http://api.example.com"], "https"),
        (["customers", "get", "\u00b2"], "e-mail"),
        (["customers", "get", "7" * 5000], "positive whole number"),
        (["customers", "addresses", "\u0667"], "positive whole number"),
        (["customers", "export", "--agent-contact", "not valid"], "agent_contact"),
        (["customers", "get", "5", "--organisation-id", "abc"], "UPHANCE_ORGANISATION_ID"),
    ],
)
def test_usage_errors_exit_2(
    env: FakeUphance, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--base-url", env.url] if "--base-url" not in argv else argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert env.requests == []


def test_a_bad_organisation_in_the_environment_is_a_usage_error(
    env: FakeUphance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UPHANCE_ORGANISATION_ID", "abc")
    assert main(["customers", "get", "5", "--base-url", env.url]) == 2
    assert "UPHANCE_ORGANISATION_ID" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["customers", "export", "--rate-limit", "nan"], "expected a number of requests"),
        (["customers", "export", "--rate-limit", "-1"], "expected a number of requests"),
        (["customers", "export", "--concurrency", "abc"], "expected a whole number from 1"),
        (["customers", "get", "5", "--timeout", "inf"], "expected a number of seconds"),
        (["demo", "--token", "t"], "unrecognized arguments: --token"),
        (["demo", "--base-url", "http://127.0.0.1:1"], "unrecognized arguments: --base-url"),
    ],
)
def test_bad_option_values_exit_2_naming_what_was_expected(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "_positive" not in err


def test_a_checkpoint_naming_page_0_is_a_usage_error(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "c.jsonl"
    checkpoint = {"next_page": 0, "params": {}}
    saved = {"version": 2, "run_id": "r", "format": "jsonl", "offset": 0, "sha256": ""}
    (tmp_path / "c.jsonl.checkpoint").write_text(json.dumps({**saved, "checkpoint": checkpoint}))
    argv = ["customers", "export", "-o", str(output), "--resume", "--base-url", env.url]
    assert main(argv) == 2
    assert "cannot read the checkpoint" in capsys.readouterr().err
    assert env.requests == []


def test_an_organisation_with_a_token_is_selected(
    env: FakeUphance, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = env.ids()[1]
    argv = ["customers", "get", str(wanted), "--organisation-id", "9580", "--base-url", env.url]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["id"] == wanted
    assert env.requests[-1].organisation == 9580


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("uphance-async 0.")
    for argv in (["--help"], ["customers", "export", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "``" not in text
    with pytest.raises(SystemExit):
        main(["customers", "export", "--help"])
    text = capsys.readouterr().out
    assert "output format" in text
    assert "which customers" in text


def test_timeout_and_max_attempts_bound_a_silent_server(
    env: FakeUphance, capsys: pytest.CaptureFixture[str]
) -> None:
    env.fault_rate, env.faults, env.slow_seconds = 1.0, ("slow",), 2.0
    started = time.monotonic()
    argv = ["customers", "get", "5", "--timeout", "0.3", "--max-attempts", "2"]
    assert main([*argv, "--base-url", env.url]) == 1
    assert time.monotonic() - started < 10
    assert "APITimeoutError" in capsys.readouterr().err


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
    output = tmp_path / "customers.jsonl"
    assert main(["demo", "--customers", "345", "--latency", "0", "--output", str(output)]) == 0
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert len(ids) == 345 == len(set(ids))
    assert ids == sorted(ids)
    assert "exported 345 customers from 4 pages" in capsys.readouterr().out
    assert [p.name for p in output.parent.iterdir()] == ["customers.jsonl"]


def test_demo_to_stdout_keeps_the_summary_out_of_the_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--customers", "120", "--latency", "0", "-o", "-"]) == 0
    captured = capsys.readouterr()
    ids = [json.loads(line)["id"] for line in captured.out.splitlines()]
    assert len(ids) == len(set(ids)) == 120
    assert "exported 120 customers" in captured.err


def test_demo_names_its_default_file_by_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--customers", "30", "--latency", "0", "--format", "csv"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["uphance-demo-customers.csv"]
    assert (tmp_path / "uphance-demo-customers.csv").read_text().startswith("id,name,")


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
    stats = StreamStats(
        pages_fetched=4, pages_done=3, items_yielded=250, total_pages=10, total_count=1000
    )
    stats.started = stats.finished = None
    progress(stats, final=True)
    assert "3/10 pages" in terminal.text  # pages written, not pages downloaded ahead
    assert "250/1,000 customers" in terminal.text
    assert not Progress(object()).enabled


def test_progress_shows_no_eta_before_there_is_a_rate() -> None:
    terminal = FakeTerminal()
    stats = StreamStats(pages_fetched=1, items_yielded=1, total_pages=400, total_count=20_000)
    stats.started = time.monotonic() - 0.01
    Progress(terminal)(stats, final=True)
    assert "ETA" not in terminal.text
    assert "/s" not in terminal.text
    stats.started = time.monotonic() - 2.0
    stats.items_yielded = 4000
    Progress(terminal)(stats, final=True)
    assert "ETA 0:08" in terminal.text or "ETA 0:07" in terminal.text


def test_export_to_a_missing_folder_is_a_usage_error(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "missing" / "dir" / "x.jsonl"
    assert main(["customers", "export", "-o", str(output), "--base-url", env.url]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_an_export_failing_on_page_1_leaves_nothing_behind(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "x.jsonl"
    args = ["customers", "export", "-o", str(output), "--base-url", env.url]
    assert main([*args, "--token", "wrong-token-123"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_help_offers_only_options_that_mean_something(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for action in ("get", "contacts", "addresses"):
        with pytest.raises(SystemExit):
            main(["customers", action, "--help"])
        text = capsys.readouterr().out
        assert "--concurrency" not in text
    with pytest.raises(SystemExit):
        main(["customers", "get", "--help"])
    assert "ID_OR_EMAIL" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["fake-server", "--help"])
    assert "tenant size (20000)" in capsys.readouterr().out


def test_export_resumed_after_the_list_changed_holds_each_stable_customer_once(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "c.jsonl"
    argv = export_all(env, output)
    before = env.ids("all")

    env.on_request = fail_after(4)
    assert main([*argv, "--max-attempts", "1", "--concurrency", "1"]) == 1
    env.on_request, env.fault_rate = None, 0.0
    env.delete_customers(30, at=0)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert len(ids) == len(set(ids))
    assert not (set(before) & set(env.ids("all"))) - set(ids)
    assert "the list changed during the crawl" in capsys.readouterr().err


def test_export_verify_reads_the_list_again_and_says_so(
    env: FakeUphance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "c.jsonl"
    argv = export_all(env, output)
    assert main([*argv, "--verify"]) == 0
    assert "verified in 1 more passes" in capsys.readouterr().err
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == env.ids("all")
    assert main([*argv, "--verify", "--resume"]) == 2
    assert "not with --resume" in capsys.readouterr().err
