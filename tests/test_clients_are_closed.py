"""Every HTTP or Keycloak client a test (or a service) opens is closed when the code using it fails.

A client closed by a plain ``await client.aclose()`` after the assertions stays open when an
assertion fails first: its connections leak into the rest of the session. A client bound to a
name must be used in ``with``/``async with`` (``contextlib.aclosing`` for those without),
closed in the ``finally`` of the ``try`` that follows it, or handed to a fixture's teardown
(a generator) or to an object that owns it (``self.x = ...``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "tests", *sorted((ROOT / "services").glob("*/src")), ROOT / "infra" / "devstack" / "src"]
#: Constructors of clients that hold connections: httpx's, the Keycloak admin clients, the test browser.
HTTPX_CLIENTS = {"Client", "AsyncClient"}
CLIENTS = {"KeycloakAdmin", "KeycloakAdminClient", "Browser"}


def _constructor(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.BoolOp):  # `http or httpx.Client()`
        return next((name for value in node.values if (name := _constructor(value))), None)
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "httpx":
        return f"httpx.{func.attr}" if func.attr in HTTPX_CLIENTS else None
    if isinstance(func, ast.Name) and func.id in CLIENTS:
        return func.id
    if isinstance(func, ast.Attribute) and func.attr in CLIENTS:
        return func.attr
    return None


def _closes(statement: ast.stmt, name: str) -> bool:
    """``statement`` is ``with name`` or a ``try`` that closes ``name`` when its body fails
    (in ``finally``, or in a handler that re-raises: the client is handed over on success)."""
    if isinstance(statement, ast.With | ast.AsyncWith):
        return any(isinstance(i.context_expr, ast.Name) and i.context_expr.id == name for i in statement.items)
    if not isinstance(statement, ast.Try):
        return False
    closers = [*statement.finalbody, *(s for h in statement.handlers for s in h.body)]
    return any(
        isinstance(node, ast.Attribute)
        and node.attr in {"close", "aclose"}
        and isinstance(node.value, ast.Name)
        and node.value.id == name
        for closer in closers
        for node in ast.walk(closer)
    )


def _unclosed(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if any(isinstance(node, ast.Yield | ast.YieldFrom) for node in ast.walk(function)):
            continue  # a fixture: its teardown after the yield runs whatever the test did
        for block in ast.walk(function):
            body = getattr(block, "body", None)
            if not isinstance(body, list):
                continue
            for index, statement in enumerate(body):
                if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
                    continue
                [target] = statement.targets
                constructor = _constructor(statement.value)
                if constructor is None or not isinstance(target, ast.Name):
                    continue
                following = body[index + 1] if index + 1 < len(body) else None
                if following is None or not _closes(following, target.id):
                    yield statement.lineno, f"{target.id} = {constructor}(...)"


def test_every_client_bound_to_a_name_is_closed_in_a_finally() -> None:
    offenders = []
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            if path == Path(__file__):
                continue
            tree = ast.parse(path.read_text(), str(path))
            offenders += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in _unclosed(tree)]
    assert not offenders, "clients not closed when the code using them fails:\n" + "\n".join(offenders)


def test_the_check_finds_a_client_closed_after_the_assertions() -> None:
    leaky = ast.parse(
        "async def test_x(settings):\n"
        "    admin = KeycloakAdmin(settings)\n"
        "    assert await admin.find_organization('x') is None\n"
        "    await admin.aclose()\n"
    )
    closed = ast.parse(
        "async def test_x(settings):\n"
        "    admin = KeycloakAdmin(settings)\n"
        "    try:\n"
        "        assert await admin.find_organization('x') is None\n"
        "    finally:\n"
        "        await admin.aclose()\n"
    )
    assert list(_unclosed(leaky)) == [(2, "admin = KeycloakAdmin(...)")]
    assert list(_unclosed(closed)) == []
