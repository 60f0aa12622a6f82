"""The command line: ``uphance-async`` (also ``python -m uphance_async``).

``customers export`` streams every customer to JSON lines or CSV, resumably;
``customers get|contacts|addresses`` print JSON; ``demo`` exports a built-in fake tenant.
Credentials come from ``UPHANCE_TOKEN``, or ``UPHANCE_EMAIL`` and ``UPHANCE_PASSWORD`` (with
``UPHANCE_ORGANISATION_ID``), or the flags of the same names; they are never printed.
Exit codes: 0 success, 1 an API or network error, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ._convert import converter
from ._export import ExportError, export
from ._validate import is_email
from .client import DEFAULT_BASE_URL, UphanceClient
from .errors import UphanceError
from .pagination import StreamStats
from .testing import FakeUphance

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
        rate = stats.items_yielded / stats.elapsed if stats.elapsed else 0.0
        pages = f"{stats.pages_fetched}/{stats.total_pages or '?'} pages"
        done = (
            f"{stats.items_yielded:,}/{stats.total_count:,}"
            if stats.total_count
            else (f"{stats.items_yielded:,}")
        )
        eta = ""
        if stats.total_count and rate:
            left = max(0.0, (stats.total_count - stats.items_yielded) / rate)
            eta = f"  ETA {int(left // 60)}:{int(left % 60):02d}"
        line = f"\r{pages}  {done} customers  {rate:,.0f}/s{eta}"
        self._stream.write(line.ljust(72) + ("\n" if final else ""))
        self._stream.flush()


def _environment(name: str, given: Any) -> Any:
    return given if given is not None else os.environ.get(name) or None


def client_from(args: argparse.Namespace) -> UphanceClient:
    """The client the options and environment describe."""
    token = _environment("UPHANCE_TOKEN", args.token)
    email = _environment("UPHANCE_EMAIL", args.email)
    password = _environment("UPHANCE_PASSWORD", args.password)
    organisation = _environment("UPHANCE_ORGANISATION_ID", args.organisation_id)
    options: dict[str, Any] = {
        "base_url": args.base_url,
        "concurrency": args.concurrency,
        "rate_limit": args.rate_limit,
    }
    try:
        if token is not None:
            return UphanceClient(token=token, **options)
        if email is not None and password is not None:
            organisation_id = int(organisation) if organisation is not None else None
            return UphanceClient(
                email=email, password=password, organisation_id=organisation_id, **options
            )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    raise UsageError(
        "no credentials: set UPHANCE_TOKEN, or UPHANCE_EMAIL and UPHANCE_PASSWORD "
        "(or pass --token, or --email and --password)"
    )


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(converter.unstructure(value), option=orjson.OPT_INDENT_2))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


async def _run_export(client: UphanceClient, args: argparse.Namespace, output: Path | None) -> str:
    progress = Progress()
    started = time.perf_counter()
    async with client:
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
            )
        except ExportError as exc:
            raise UsageError(str(exc)) from None
    elapsed = time.perf_counter() - started
    progress(stats, final=True)
    rate = stats.items_yielded / elapsed if elapsed else 0.0
    where = output if output is not None else "standard output"
    return (
        f"{'resumed: ' if resumed else ''}exported {stats.items_yielded:,} customers from "
        f"{stats.pages_fetched} pages to {where} in {elapsed:.2f} s ({rate:,.0f} customers/s, "
        f"{stats.retries} retries, {stats.throttled} throttled)"
    )


async def _customers(args: argparse.Namespace) -> str | None:
    client = client_from(args)
    if args.action == "export":
        output = None if args.output == "-" else Path(args.output)
        return await _run_export(client, args, output)
    async with client:
        target = args.target
        if args.action == "get":
            found: Any = (
                await client.customers.get(_as_id(target))
                if target.isdigit()
                else await client.customers.get_by_email(_as_email(target))
            )
        elif args.action == "contacts":
            found = await client.customers.contacts(_as_id(target))
        else:
            found = await client.customers.addresses(_as_id(target))
    _print_json(found)
    return None


def _as_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"a customer id is a positive number, not {text!r}")
    return int(text)


def _as_email(text: str) -> str:
    if not is_email(text):
        raise UsageError(f"give a customer id or a contact's e-mail, not {text!r}")
    return text


async def _demo(args: argparse.Namespace) -> str:
    async with FakeUphance(customers=args.customers, page_size=100, latency=args.latency) as fake:
        args.token, args.base_url = fake.token, fake.url
        args.status, args.agent_contact = "all", None
        output = None if args.output == "-" else Path(args.output)
        summary = await _run_export(client_from(args), args, output)
    return f"demo tenant ({args.latency * 1000:.0f} ms per page): {summary}"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", default=DEFAULT_BASE_URL, help="API root (%(default)s)")
    common.add_argument("--token", help="access token (better: UPHANCE_TOKEN)")
    common.add_argument("--email", help="sign-in e-mail (or UPHANCE_EMAIL)")
    common.add_argument(
        "--password",
        help="sign-in password; visible to other users of this machine, prefer UPHANCE_PASSWORD",
    )
    common.add_argument("--organisation-id", type=int, help="organisation to act on")
    common.add_argument("--concurrency", type=_positive, default=8, help="pages at once (8)")
    common.add_argument("--rate-limit", type=float, help="requests per second (adaptive if unset)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")

    exporting = argparse.ArgumentParser(add_help=False)
    exporting.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    exporting.add_argument("--resume", action="store_true", help="carry on from the checkpoint")

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    customers = commands.add_parser("customers", help="the Customer API")
    actions = customers.add_subparsers(dest="action", required=True)
    run = actions.add_parser("export", parents=[common, exporting], help="every customer")
    run.add_argument("--status", choices=("active", "inactive", "all"))
    run.add_argument("--agent-contact", help="only customers of the agent with this e-mail/phone")
    run.add_argument("--output", "-o", default="-", help="file, or - for standard output")
    for action, what in (("get", "ID or EMAIL"), ("contacts", "ID"), ("addresses", "ID")):
        one = actions.add_parser(action, parents=[common], help=f"print JSON for {what}")
        one.add_argument("target", metavar=what.split()[0])
    demo = commands.add_parser(
        "demo",
        parents=[common, exporting],
        help="export every customer of a built-in fake tenant (no account needed)",
    )
    demo.add_argument("--customers", type=_natural, default=20_000, help="tenant size (20000)")
    demo.add_argument("--latency", type=_seconds, default=0.05, help="seconds per page (0.05)")
    demo.add_argument("--output", "-o", default="uphance-demo-customers.jsonl")
    return parser


def _natural(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < 60:
        raise argparse.ArgumentTypeError("must be between 0 and 60 seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    run = _demo if args.command == "demo" else _customers
    try:
        summary = asyncio.run(run(args))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except UphanceError as exc:
        if args.debug:
            traceback.print_exception(exc)
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (an export carries on with --resume)", file=sys.stderr)
        return 130
    if summary:
        print(summary, file=sys.stderr if args.command == "customers" else sys.stdout)
    return 0
