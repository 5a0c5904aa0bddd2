"""Every SQL statement in ``src/`` is a constant, or composed with :mod:`psycopg.sql`.

Values travel as bind parameters; identifiers and literals that must be part of the text go
through ``sql.Identifier``/``sql.Literal``. So a statement handed to ``execute``/``copy`` is
never built by f-strings, ``%``, ``+`` or ``str.format``/``str.join``, and ``sql.SQL`` itself
only ever wraps constant text. The check reads the syntax tree (a name passed to ``execute``
is followed to its assignments in the same function or module) and is itself tested on
snippets that must be caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
QUERY_METHODS = {"execute", "executemany", "copy", "stream", "mogrify"}


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _static(node: ast.AST) -> bool:
    """Constant text: a string literal, or a choice between literals."""
    if _is_text(node):
        return True
    if isinstance(node, ast.IfExp):
        return _static(node.body) and _static(node.orelse)
    return False


def _is_sql_call(node: ast.AST) -> bool:
    """``sql.SQL(...)`` or ``SQL(...)``."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Attribute) and f.attr == "SQL") or (isinstance(f, ast.Name) and f.id == "SQL")


def _formatted(node: ast.AST) -> str | None:
    """Why ``node`` is text built at run time from pieces, or None."""
    if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
        return "f-string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and (
        _is_text(node.left) or isinstance(node.left, ast.JoinedStr)
    ):
        return "%-formatting"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = (node.left, node.right)
        if any(_is_text(s) or _formatted(s) for s in sides) and not all(_static(s) for s in sides):
            return "string concatenation"
    if (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"format", "join"}
        and (_is_text(node.func.value) or _formatted(node.func.value))
    ):
        return f"str.{node.func.attr}"
    return None


class _Scope:
    """Assignments per function (and the module), to follow a name to what it holds."""

    def collect(self, scope: ast.AST) -> dict[str, list[ast.AST]]:
        names: dict[str, list[ast.AST]] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.setdefault(target.id, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign | ast.AugAssign)
                and isinstance(node.target, ast.Name) and node.value is not None
            ):
                value = node.value
                if isinstance(node, ast.AugAssign):  # q += f"..." builds text too
                    value = ast.BinOp(ast.Constant(""), node.op, node.value)
                names.setdefault(node.target.id, []).append(value)
        return names


def findings(source: str, filename: str = "<snippet>") -> list[str]:
    """Unsafe SQL constructions in ``source``, as ``file:line: why`` strings."""
    tree = ast.parse(source, filename)
    scope = _Scope()
    module_names = scope.collect(tree)
    out: list[str] = []

    def bound(node: ast.Name, names: dict[str, list[ast.AST]]) -> list[ast.AST]:
        return names.get(node.id, []) + module_names.get(node.id, [])

    def check(node: ast.AST, names: dict[str, list[ast.AST]], what: str) -> None:
        why = _formatted(node)
        if why is None and isinstance(node, ast.Name):
            why = next(filter(None, (_formatted(v) for v in bound(node, names))), None)
        if why:
            out.append(f"{filename}:{node.lineno}: {why} as {what}")

    def constant_text(node: ast.AST, names: dict[str, list[ast.AST]]) -> bool:
        if isinstance(node, ast.Name):  # a parameter (never assigned here) is not constant
            values = bound(node, names)
            return bool(values) and all(_static(v) for v in values)
        return _static(node)

    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    owner: dict[int, dict[str, list[ast.AST]]] = {}
    for fn in functions:
        names = scope.collect(fn)
        for node in ast.walk(fn):
            owner[id(node)] = names
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        names = owner.get(id(node), {})
        if _is_sql_call(node):
            out.extend(f"{filename}:{node.lineno}: sql.SQL wraps text that is not a constant"
                       for arg in node.args if not constant_text(arg, names))
        elif isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS:
            query = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg in {"query", "statement"}), None
            )
            if query is not None:
                check(query, names, f"{node.func.attr}() query")
    return out


BAD = {
    "f-string": 'def f(c, t):\n    c.execute(f"SELECT * FROM {t}")\n',
    "percent": 'def f(c, x):\n    c.execute("SELECT %s" % x)\n',
    "concat": 'def f(c, x):\n    c.execute("SELECT * FROM t WHERE id = " + x)\n',
    "format": 'def f(c, x):\n    c.execute("SELECT {}".format(x))\n',
    "join": 'def f(c, cols):\n    c.copy("COPY t (" + ", ".join(cols) + ") FROM STDIN")\n',
    "via name": 'def f(c, t):\n    q = f"DELETE FROM {t}"\n    c.execute(q)\n',
    "augmented": 'def f(c, t):\n    q = "DELETE FROM "\n    q += t\n    c.execute(q)\n',
    "module name": 'Q = "SELECT %s" % 1\ndef f(c):\n    c.execute(Q)\n',
    "keyword": 'def f(c, t):\n    c.execute(query=f"SELECT {t}")\n',
    "copy": 'def f(cur, t):\n    cur.copy(f"COPY {t} FROM STDIN")\n',
    "sql.SQL f-string": 'from psycopg import sql\ndef f(c, t):\n    c.execute(sql.SQL(f"SELECT {t}"))\n',
    "sql.SQL variable": 'from psycopg import sql\ndef f(c, t):\n    c.execute(sql.SQL(t))\n',
}

GOOD = {
    "params": 'def f(c, x):\n    c.execute("SELECT * FROM t WHERE id = %s", (x,))\n',
    "composed": 'from psycopg import sql\ndef f(c, t):\n'
                '    c.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t)))\n',
    "module constant": 'Q = """SELECT 1"""\ndef f(c):\n    c.execute(Q)\n',
    "choice": 'from psycopg import sql\ndef f(c, a):\n    c.execute(sql.SQL("A {}" if a else "B {}"))\n',
    "frame copy": "def f(frame):\n    return frame.copy()\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_checker_catches(name: str) -> None:
    assert findings(BAD[name]), f"{name} not caught"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_checker_accepts(name: str) -> None:
    assert findings(GOOD[name]) == []


def test_no_sql_built_from_strings_in_src() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50  # the scan really covers the package
    problems = [p for f in files for p in findings(f.read_text(), str(f.relative_to(SRC)))]
    assert problems == []
