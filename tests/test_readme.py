"""README.rst and the docs render, the README opens with the two commands CI runs, and every
example in them runs."""

from __future__ import annotations

import ast
import asyncio
import re
import shlex
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docutils.core  # type: ignore[import-untyped]
import httpx
import pytest

import uphance_async
from uphance_async.cli import main
from uphance_async.testing import FakeUphance

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.rst").read_text()
DOCS = {page.name: page.read_text() for page in sorted((ROOT / "docs").glob("*.rst"))}
PASSWORD = "readme-password"


def blocks(language: str) -> list[str]:
    """The bodies of the ``.. code-block:: language`` directives of the README and the docs,
    dedented (a page that includes part of the README does not repeat its blocks)."""
    found = []
    pattern = rf"^\.\. code-block:: {language}\n\n((?:(?:   .*)?\n)+)"
    for text in (README, *DOCS.values()):
        for match in re.finditer(pattern, text, flags=re.MULTILINE):
            found.append(textwrap.dedent(match.group(1)).strip() + "\n")
    return found


PYTHON = blocks("python")
COMMANDS = [
    line[2:] for block in blocks("console") for line in block.splitlines() if line.startswith("$ ")
]


def test_readme_renders_without_warnings() -> None:
    docutils.core.publish_doctree(README, settings_overrides={"report_level": 2, "halt_level": 2})


def test_the_readme_is_short_and_links_every_guide() -> None:
    assert len(README.splitlines()) <= 200
    linked = set(re.findall(r"<docs/([a-z-]+\.rst)>`_", README))
    guides = set(DOCS) - {"index.rst", "api.rst", "limits.rst", "development.rst"}
    assert guides <= linked
    assert all(name in DOCS for name in linked)


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    first_two = [line for line in README.splitlines() if line.lstrip().startswith("$ ")][:2]
    assert first_two[0].strip() == "$ python -m pip install . && python -m uphance_async demo"
    test_command = first_two[1].strip()[2:]
    assert test_command in (ROOT / ".ci" / "run").read_text()
    assert len(PYTHON) >= 18


@pytest.fixture
def readme_server(
    thread_served: Callable[[FakeUphance], FakeUphance],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> FakeUphance:
    server = FakeUphance(
        customers=250, page_size=100, token="YOUR_TOKEN", email="me@example.com", password=PASSWORD
    )
    server.patch_customer(
        985765, {"people": [{"id": 1090940, "customer_id": 985765, "email": "ship@example.com"}]}
    )
    thread_served(server)

    class LocalClient(uphance_async.UphanceClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("base_url", server.url)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(uphance_async, "UphanceClient", LocalClient)
    monkeypatch.setenv("UPHANCE_PASSWORD", PASSWORD)
    monkeypatch.setenv("UPHANCE_TOKEN", "YOUR_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("SOURCES__UPHANCE__BASE_URL", server.url)  # the dlt source's base URL
    monkeypatch.chdir(tmp_path)
    return server


async def run_block(source: str, namespace: dict[str, Any]) -> None:
    code = compile(source, "README.rst", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        await result
    app = namespace.get("app")
    if app is not None:  # the FastAPI example: serve one request through it
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                answer = await http.get("/customers/985765")
        assert answer.status_code == 200
        assert answer.json()["id"] == 985765


@pytest.mark.parametrize("source", PYTHON, ids=[f"block{n}" for n in range(len(PYTHON))])
def test_python_examples_run(
    source: str, readme_server: FakeUphance, capsys: pytest.CaptureFixture[str]
) -> None:
    saved: list[Any] = []
    if "asyncio.run(" in source:
        exec(compile(source, "README.rst", "exec"), {"__name__": "readme"})
    else:

        async def in_a_client() -> None:
            async with uphance_async.UphanceClient(token="YOUR_TOKEN") as client:
                await run_block(source, {"client": client, "save": saved.append})

        asyncio.run(in_a_client())
    assert all(r.status < 500 for r in readme_server.requests)
    if "save(" in source:
        assert len(saved) >= 250


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c.startswith("uphance-async")], ids=lambda c: c[14:40]
)
def test_command_lines_run(command: str, readme_server: FakeUphance) -> None:
    argv = [*shlex.split(command)[1:], "--base-url", readme_server.url]
    assert main(argv) == 0
