"""The command line: ``uphance-async`` (also ``python -m uphance_async``).

``customers export`` streams every customer to JSON lines or CSV, resumably;
``customers get|contacts|addresses`` print JSON; ``demo`` exports a built-in fake tenant;
``fake-server`` serves one until stopped. Credentials come from ``UPHANCE_TOKEN``, or
``UPHANCE_EMAIL`` and ``UPHANCE_PASSWORD`` (with ``UPHANCE_ORGANISATION_ID``), or the flags of
the same names; they are never printed.

Exit codes: 0 success, 1 an API, network or output error, 2 a usage error, 130 interrupted,
141 standard output closed early (``| head``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from ._convert import converter
from ._export import export
from ._json import indented
from ._retry import RetryPolicy
from ._validate import is_email
from ._version import __version__
from .client import DEFAULT_BASE_URL, DEFAULT_CONCURRENCY, UphanceClient
from .errors import ExportError, OutputStateError, UphanceError
from .pagination import StreamStats
from .resources.customers import STATUSES, query_filters

PROG = "uphance-async"


class UsageError(Exception):
    """The command line asks for something that cannot be done (exit code 2)."""


class Progress:
    """A one-line progress report on stderr (only when it is a terminal), at most 10 a second."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self._stream, "isatty", lambda: False)())
        self._shown = 0.0

    def __call__(self, stats: StreamStats, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._shown < 0.1):
            return
        self._shown = now
        # Until a second has passed the rate says more about start-up than about the crawl.
        rate = stats.items_yielded / stats.elapsed if stats.elapsed >= 1.0 else 0.0
        pages = f"{stats.pages_done}/{stats.total_pages or '?'} pages"
        done = (
            f"{stats.items_yielded:,}/{stats.total_count:,}"
            if stats.total_count
            else (f"{stats.items_yielded:,}")
        )
        eta = ""
        if stats.total_count and rate:
            left = max(0.0, (stats.total_count - stats.items_yielded) / rate)
            eta = f"  ETA {int(left // 60)}:{int(left % 60):02d}"
        speed = f"  {rate:,.0f}/s" if rate else ""
        line = f"\r{pages}  {done} customers{speed}{eta}"
        self._stream.write(line.ljust(72) + ("\n" if final else ""))
        self._stream.flush()


def _environment(name: str, given: Any) -> Any:
    return given if given is not None else os.environ.get(name) or None


_ID = re.compile(r"[0-9]{1,18}")


def _id_text(name: str, text: str) -> int:
    """A positive id written in ASCII digits (``"²".isdigit()`` is true, ``int("²")`` fails)."""
    if not _ID.fullmatch(text) or int(text) < 1:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise UsageError(f"{name} must be a positive whole number, not {shown!r}")
    return int(text)


def _credentials(args: argparse.Namespace) -> tuple[str | None, str | None, str | None, int | None]:
    """Token, e-mail, password and organisation from the options, else the environment."""
    organisation_text = _environment("UPHANCE_ORGANISATION_ID", args.organisation_id)
    organisation = (
        None
        if organisation_text is None
        else _id_text("--organisation-id (or UPHANCE_ORGANISATION_ID)", str(organisation_text))
    )
    token = _environment("UPHANCE_TOKEN", args.token)
    email = _environment("UPHANCE_EMAIL", args.email)
    password = _environment("UPHANCE_PASSWORD", args.password)
    if token is None and (email is None or password is None):
        raise UsageError(_NO_CREDENTIALS)
    return token, email, password, organisation


_NO_CREDENTIALS = (
    "no credentials: set UPHANCE_TOKEN, or UPHANCE_EMAIL and UPHANCE_PASSWORD "
    "(or pass --token, or --email and --password)"
)


def client_from(args: argparse.Namespace) -> tuple[UphanceClient, int | None]:
    """The client the options and environment describe, and the organisation to select on it
    (a token's organisation is chosen after opening; a sign-in chooses its own)."""
    token, email, password, organisation = _credentials(args)
    options: dict[str, Any] = {
        "base_url": args.base_url,
        "concurrency": getattr(args, "concurrency", DEFAULT_CONCURRENCY),
        "rate_limit": args.rate_limit,
        "timeout": args.timeout,
        "retry": RetryPolicy(max_attempts=args.max_attempts),
    }
    try:
        if token is not None:
            return UphanceClient(token=token, **options), organisation
        # _credentials made sure that e-mail and password are both there.
        client = UphanceClient(
            email=email, password=password, organisation_id=organisation, **options
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return client, None


@contextlib.asynccontextmanager
async def _opened(args: argparse.Namespace) -> AsyncIterator[UphanceClient]:
    client, organisation = client_from(args)
    async with client:
        if organisation is not None:
            await client.set_organisation(organisation)
        yield client


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(indented(converter.unstructure(value)))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


async def _run_export(client: UphanceClient, args: argparse.Namespace, output: Path | None) -> str:
    progress = Progress()
    started = time.perf_counter()
    try:
        stats, resumed = await export(
            client,
            output,
            form=args.format,
            status=args.status,
            agent_contact=args.agent_contact,
            resume=args.resume,
            concurrency=args.concurrency,
            progress=progress,
            stdout=sys.stdout.buffer,
            verify=getattr(args, "verify", False),
        )
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    elapsed = time.perf_counter() - started
    progress(stats, final=True)
    rate = stats.items_yielded / elapsed if elapsed else 0.0
    where = output if output is not None else "standard output"
    moved = ""
    if stats.drift or stats.pages_reread:
        moved = f"; the list changed during the crawl: {stats.pages_reread} pages read again"
    if stats.verify_passes:
        moved += f"; verified in {stats.verify_passes} more passes"
    return (
        f"{'resumed: ' if resumed else ''}exported {stats.items_yielded:,} customers from "
        f"{stats.pages_fetched} pages to {where} in {elapsed:.2f} s ({rate:,.0f} customers/s, "
        f"{stats.retries} retries, {stats.throttled} throttled{moved})"
    )


def _output(args: argparse.Namespace) -> Path | None:
    return None if args.output == "-" else Path(args.output)


async def _customers(args: argparse.Namespace) -> str | None:
    if args.action == "export":
        try:
            query_filters(args.status, args.agent_contact)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        async with _opened(args) as client:
            return await _run_export(client, args, _output(args))
    target = args.target
    if args.action != "get" or (target.isascii() and target.isdigit()):
        identifier: int | str = _id_text("a customer id", target)
    else:
        identifier = _as_email(target)
    async with _opened(args) as client:
        if isinstance(identifier, str):
            found: Any = await client.customers.get_by_email(identifier)
        elif args.action == "get":
            found = await client.customers.get(identifier)
        elif args.action == "contacts":
            found = await client.customers.contacts(identifier)
        else:
            found = await client.customers.addresses(identifier)
    _print_json(found)
    return None


def _load(args: argparse.Namespace) -> str:
    """``customers load``: a mirror of the tenant's customers in a warehouse, through dlt."""
    token, email, password, organisation = _credentials(args)
    # dlt sends usage data unless told otherwise: only when the user configured it.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    try:
        from .dlt import _load_mirror, uphance_source
    except ImportError:
        raise UsageError("customers load needs dlt: pip install 'uphance-async[dlt]'") from None
    database = None
    if args.destination == "duckdb":
        database = Path(args.database).resolve()
        if database.stem == args.dataset:
            # DuckDB names a file's catalog after the file: every query would be ambiguous.
            raise UsageError(
                f"--dataset {args.dataset} is also the name of {args.database}'s catalog "
                "in DuckDB: choose another --dataset or --database"
            )
        if not database.parent.is_dir():
            raise UsageError(f"the folder of {args.database} does not exist")
    progress = _LoadProgress(quiet=args.quiet)
    started = time.perf_counter()
    source = uphance_source(
        token=token,
        email=email,
        password=password,
        organisation_id=organisation,
        base_url=args.base_url,
        status=args.status,
        concurrency=args.concurrency,
        rate_limit=args.rate_limit,
        timeout=args.timeout,
        max_attempts=args.max_attempts,
        mirror=True,
        on_stats=progress.extracting,
    )
    try:
        rows = _load_mirror(
            source,
            dataset=args.dataset,
            database=database,
            destination=args.destination,
            on_phase=progress.phase,
        )
    except Exception as exc:
        raise _uphance_cause(exc) from None
    progress.done()
    tables = ", ".join(f"{table} {count:,}" for table, count in rows.items())
    where = args.database if database is not None else args.destination
    return (
        f"loaded {rows.get('customers', 0):,} customers into {where} "
        f"(dataset {args.dataset}) in {time.perf_counter() - started:.2f} s: {tables}"
    )


class _LoadProgress:
    """The phases of a load on stderr: a live line on a terminal, else a line every few
    seconds and one per phase; nothing with ``--quiet``."""

    EVERY = 5.0

    def __init__(self, *, quiet: bool, stream: Any = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._quiet = quiet
        self._live = bool(getattr(self._stream, "isatty", lambda: False)())
        self._open = False
        self._shown = -math.inf
        self._started = time.monotonic()
        self._unshown = ""

    def extracting(self, stats: StreamStats) -> None:
        total = f"/{stats.total_count:,}" if stats.total_count else ""
        text = f"extract: {stats.items_yielded:,}{total} customers"
        now = time.monotonic()
        if now - self._shown < (0.1 if self._live else self.EVERY):
            self._unshown = text
            return
        self._shown, self._unshown = now, ""
        self._say(text, live=True)

    def phase(self, text: str) -> None:
        """A phase begins (or the load ends): the last extract count first, then ``text``."""
        if self._unshown:
            self._say(self._unshown, live=True)
            self._unshown = ""
        self._say(text)

    def done(self) -> None:
        self.phase(f"done in {time.monotonic() - self._started:.1f} s")

    def _say(self, text: str, *, live: bool = False) -> None:
        if self._quiet:
            return
        if self._live and live:
            self._stream.write(f"\r{text}".ljust(72))
            self._open = True
        else:
            self._stream.write(("\n" if self._open else "") + text + "\n")
            self._open = False
        self._stream.flush()


def _uphance_cause(error: BaseException) -> BaseException:
    """The library error (or Ctrl-C) a dlt failure wraps, else a one-line error about dlt."""
    seen = error
    for _ in range(20):
        if isinstance(seen, UphanceError | UsageError | KeyboardInterrupt):
            return seen
        follow = seen.__cause__ or seen.__context__ or getattr(seen, "exception", None)
        if not isinstance(follow, BaseException):
            break
        seen = follow
    return LoadError(f"dlt: {type(error).__name__}: {' '.join(str(error).split())[:300]}")


class LoadError(Exception):
    """dlt failed for a reason of its own (exit code 1)."""


def _as_email(text: str) -> str:
    if not is_email(text):
        raise UsageError(f"give a customer id or a contact's e-mail, not {text[:60]!r}")
    return text


async def _demo(args: argparse.Namespace) -> str:
    if args.output is None:
        args.output = f"uphance-demo-customers.{args.format}"
    # Imported by the two commands that serve one, not by every run of the command line.
    from .testing import FakeUphance

    async with FakeUphance(customers=args.customers, page_size=100, latency=args.latency) as fake:
        args.token, args.base_url = fake.token, fake.url
        args.email = args.password = args.organisation_id = None
        args.status, args.agent_contact = "all", None
        async with _opened(args) as client:
            summary = await _run_export(client, args, _output(args))
    return f"demo tenant ({args.latency * 1000:.0f} ms per page): {summary}"


async def _fake_server(args: argparse.Namespace) -> str:
    from .testing import FakeUphance

    server = FakeUphance(
        customers=args.customers, page_size=100, latency=args.latency, port=args.port
    )
    async with server:
        print(
            f"FakeUphance with {args.customers:,} customers at {server.url}\n"
            f"  export UPHANCE_TOKEN={server.token}\n"
            f"  uphance-async customers export --base-url {server.url} --status all -o c.jsonl\n"
            "Stop it with Ctrl-C.",
            flush=True,
        )
        await asyncio.Event().wait()
    return ""


def _number(kind: str, convert: Callable[[str], Any], low: float, high: float) -> Any:
    """An argparse type: ``convert(text)`` within [low, high], else a message saying so."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not low <= value <= high:
            limits = f"from {low:g}" + (f" to {high:g}" if math.isfinite(high) else " up")
            raise argparse.ArgumentTypeError(f"expected {kind} {limits}, not {text!r}")
        return value

    parse.__name__ = kind
    return parse


_positive = _number("a whole number", int, 1, 10_000)
_customers_count = _number("a whole number", int, 0, 10_000_000)
_rate = _number("a number of requests per second", float, 1e-3, 1e6)
_seconds = _number("a number of seconds", float, 0, 60)
_timeout = _number("a number of seconds", float, 0.1, 86_400)
_port = _number("a port number", int, 0, 65_535)


def _parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--base-url", default=DEFAULT_BASE_URL, help="API root (%(default)s)")
    connection.add_argument("--token", help="access token (better: UPHANCE_TOKEN)")
    connection.add_argument("--email", help="sign-in e-mail (or UPHANCE_EMAIL)")
    connection.add_argument(
        "--password",
        help="sign-in password; visible to other users of this machine, prefer UPHANCE_PASSWORD",
    )
    connection.add_argument(
        "--organisation-id", help="organisation to act on (or UPHANCE_ORGANISATION_ID)"
    )

    pages = argparse.ArgumentParser(add_help=False)
    pages.add_argument(
        "--concurrency",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        help=f"pages at once ({DEFAULT_CONCURRENCY})",
    )
    tuning = argparse.ArgumentParser(add_help=False)
    tuning.add_argument(
        "--rate-limit", type=_rate, help="requests per second (adapts to the server if unset)"
    )
    tuning.add_argument(
        "--timeout", type=_timeout, default=60.0, help="seconds one request may take (60)"
    )
    tuning.add_argument(
        "--max-attempts", type=_positive, default=5, help="tries per request, retries included (5)"
    )
    tuning.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")

    exporting = argparse.ArgumentParser(add_help=False)
    exporting.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="output format (jsonl)"
    )
    exporting.add_argument(
        "--resume", action="store_true", help="carry on from the checkpoint of a stopped export"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Command line for the Uphance Customer API.",
        epilog="Exit codes: 0 done, 1 API, network or output error, 2 usage error, "
        "130 interrupted, 141 output closed early.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    customers = commands.add_parser("customers", help="the Customer API")
    actions = customers.add_subparsers(dest="action", required=True)
    run = actions.add_parser(
        "export", parents=[connection, pages, tuning, exporting], help="every customer"
    )
    run.add_argument(
        "--status", choices=STATUSES, help="which customers (the API's default: active)"
    )
    run.add_argument("--agent-contact", help="only customers of the agent with this e-mail/phone")
    run.add_argument(
        "--output", "-o", default="-", help="file, or - for standard output (not resumable)"
    )
    run.add_argument(
        "--verify",
        action="store_true",
        help="read the list again after the crawl to catch changes that keep its count "
        "(at least one more full crawl; not with --resume)",
    )
    load = actions.add_parser(
        "load",
        parents=[connection, pages, tuning],
        help="every customer into a warehouse through dlt (a DuckDB file by default)",
    )
    load.add_argument("--database", default="uphance.duckdb", help="DuckDB file (%(default)s)")
    load.add_argument(
        "--dataset", default="uphance_data", help="dataset (schema) name (%(default)s)"
    )
    load.add_argument(
        "--status", choices=STATUSES, help="which customers (the API's default: active)"
    )
    load.add_argument(
        "--destination", default="duckdb", help="any dlt destination name (%(default)s)"
    )
    load.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    for action, what, metavar in (
        ("get", "a customer, by id or by a contact's e-mail", "ID_OR_EMAIL"),
        ("contacts", "a customer's contacts", "ID"),
        ("addresses", "a customer's addresses", "ID"),
    ):
        one = actions.add_parser(action, parents=[connection, tuning], help=f"print {what} (JSON)")
        one.add_argument("target", metavar=metavar, help=what)
    demo = commands.add_parser(
        "demo",
        parents=[pages, tuning, exporting],
        help="export every customer of a built-in fake tenant (no account needed)",
    )
    demo.add_argument(
        "--customers", type=_customers_count, default=20_000, help="tenant size (%(default)s)"
    )
    demo.add_argument("--latency", type=_seconds, default=0.05, help="seconds per page (0.05)")
    demo.add_argument("--output", "-o", help="file, or - (default: uphance-demo-customers.FORMAT)")
    serve = commands.add_parser(
        "fake-server", help="serve a fake Uphance tenant on 127.0.0.1 until Ctrl-C"
    )
    serve.add_argument(
        "--customers", type=_customers_count, default=20_000, help="tenant size (%(default)s)"
    )
    serve.add_argument("--latency", type=_seconds, default=0.05, help="seconds per page (0.05)")
    serve.add_argument("--port", type=_port, default=0, help="port (0: any free one)")
    return parser


def _stdout_closed() -> int:
    """Standard output's reader went away (``| head``): say nothing, as a shell tool would."""
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail too.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if getattr(args, "debug", False):
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    run = {"demo": _demo, "fake-server": _fake_server}.get(args.command, _customers)
    try:
        if getattr(args, "action", None) == "load":
            summary: str | None = _load(args)
        else:
            summary = asyncio.run(run(args))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_closed()
    except (OSError, OutputStateError, LoadError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except UphanceError as exc:
        if getattr(args, "debug", False):
            traceback.print_exception(exc)
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.command == "fake-server":
            print(f"{PROG}: fake server stopped", file=sys.stderr)
            return 0
        resumable = getattr(args, "output", "-") not in ("-", None)
        hint = " (carry on with --resume)" if resumable else ""
        print(f"{PROG}: interrupted{hint}", file=sys.stderr)
        return 130
    if summary:
        to_stdout = args.command == "demo" and args.output != "-"
        print(summary, file=sys.stdout if to_stdout else sys.stderr)
    return 0
