"""The command line as its own process: killed exports, closed pipes, the fake server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from uphance_async.testing import FakeUphance

# The command line as a shell starts a foreground job: with Ctrl-C at its default. A child
# inherits an ignored SIGINT, and in some full-suite runs this process had it ignored when it
# started children (their first Ctrl-C then did nothing), whatever the command line does.
CLI = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('uphance_async', run_name='__main__')",
]


def run_killed(argv: list[str], env: dict[str, str], cwd: Path, after: float, how: int) -> int:
    """Run ``argv``, sending ``how`` after ``after`` seconds unless it ended first; its code."""
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        process.wait(after)
    except subprocess.TimeoutExpired:
        process.send_signal(how)
    _, err = process.communicate(timeout=60)
    assert b"Traceback" not in err or how == signal.SIGINT
    return process.returncode


@pytest.mark.slow
@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_exports_killed_at_random_then_resumed_hold_every_customer_once(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path, form: str
) -> None:
    fake = thread_served(FakeUphance(customers=3000, page_size=25, latency=0.02, seed=3))
    env = {**os.environ, "UPHANCE_TOKEN": fake.token}
    rng = random.Random(f"kill-{form}")
    kills = 0
    for round_ in range(10):
        output = tmp_path / f"round{round_}.{form}"
        argv = [*CLI, "customers", "export", "--status", "all", "--format", form]
        argv += ["-o", str(output), "--base-url", fake.url, "--concurrency", "2"]
        signals = (signal.SIGINT, signal.SIGKILL)
        if run_killed(argv, env, tmp_path, rng.uniform(0.3, 1.2), signals[round_ % 2]) != 0:
            kills += 1
        for attempt in range(20):
            how = signals[(round_ + attempt + 1) % 2]
            after = rng.uniform(0.3, 1.2) if attempt < 2 else 60.0
            if run_killed([*argv, "--resume"], env, tmp_path, after, how) == 0:
                break
            kills += 1
        data = output.read_bytes()
        assert b"\0" not in data
        lines = data.decode().splitlines()
        if form == "jsonl":
            ids = [json.loads(line)["id"] for line in lines]
        else:
            ids = [int(line.split(",", 1)[0]) for line in lines[1:]]
        assert ids == fake.ids("all"), f"round {round_}"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(output.name)) == [
            output.name
        ]
    assert kills >= 10


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*CLI, "demo", "--customers", "5000", "--latency", "0", "-o", "-"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["id"]
    process.stdout.close()  # what `| head -1` does once it has its line
    _, err = process.communicate(timeout=60)
    assert process.returncode == 141
    assert err == b""


def test_fake_server_serves_until_interrupted(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [*CLI, "fake-server", "--customers", "120", "--latency", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        token_line = server.stdout.readline()
        url = first.rsplit(" at ", 1)[1].strip()
        token = token_line.split("UPHANCE_TOKEN=", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        output = tmp_path / "c.jsonl"
        done = subprocess.run(
            [*CLI, "customers", "export", "--status", "all", "--base-url", url, "-o", str(output)],
            env={**os.environ, "UPHANCE_TOKEN": token},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert len(output.read_text().splitlines()) == 120
    finally:
        server.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0  # Ctrl-C is how a server is stopped, not a failure
    assert err.strip() == "uphance-async: fake server stopped"
    assert time.monotonic() - started < 30


def test_ctrl_c_on_get_says_interrupted_without_resume(
    thread_served: Callable[[FakeUphance], FakeUphance], tmp_path: Path
) -> None:
    fake = thread_served(FakeUphance(customers=10, fault_rate=1.0, faults=("slow",)))
    fake.slow_seconds = 3.0
    process = subprocess.Popen(
        [*CLI, "customers", "get", str(fake.ids()[0]), "--base-url", fake.url],
        env={**os.environ, "UPHANCE_TOKEN": fake.token},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupted while its request waits on the slow server, however long start-up took.
    deadline = time.monotonic() + 30
    while not fake.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.strip() == "uphance-async: interrupted"
