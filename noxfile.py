"""Automation: ``nox`` runs the tests, the linter, the type checker and the docs build."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite, against the installed package: the quick session (the README's
    command), then the slow one."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", *session.posargs)
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, the tests, the benchmarks and the examples."""
    session.install(".[test]")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The Sphinx site in docs/, warnings as errors, into a temporary folder."""
    session.install(".[docs]")
    out = session.create_tmp()
    session.run("python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", f"{out}/html")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmarks in benchmarks/ (figures, not pass/fail); pass names to run only some."""
    session.install(".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
