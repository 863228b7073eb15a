"""House style, checked by tools in `make test`: ruff's lint rules and formatting (configured in
pyproject.toml), snakefmt on the workflow, import-linter's layers, small functions and modules, and
library imports at module level (an import inside a function hides a dependency from the layers).

`make format` applies what ruff and snakefmt can fix by themselves."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.style

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "sbmoe"
PYTHON_TREES = ["src", "tests", "workflow", "bench"]
MAX_FUNCTION_LINES = 60  # a function's body, docstring excluded
MAX_MODULE_LINES = 400


def tool(name: str) -> str:
    """The command ``name`` of this Python environment (the ``test`` extra installs it)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it comes with the test extra (pip install -e '.[test]')")
    return found


def run(*command: str) -> subprocess.CompletedProcess:
    """``command`` from the repository root, importing this tree's library (not an installed copy)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def report(completed: subprocess.CompletedProcess, limit: int = 6000) -> str:
    text = (completed.stdout + completed.stderr).strip()
    return text if len(text) <= limit else "...\n" + text[-limit:]


# ---- the tools ----


def test_ruff_lint():
    completed = run(tool("ruff"), "check", "--no-cache", "--output-format", "concise", *PYTHON_TREES)
    assert completed.returncode == 0, "ruff check (make format fixes what ruff can):\n" + report(completed)


def test_ruff_format():
    completed = run(tool("ruff"), "format", "--check", "--no-cache", "--output-format", "concise", *PYTHON_TREES)
    assert completed.returncode == 0, "not formatted (make format):\n" + report(completed)


def test_snakefmt():
    completed = run(tool("snakefmt"), "--check", "--verbose", "Snakefile", "rules/")
    # --verbose names each file that would change; the rest of its output is which files it read
    named = [
        line
        for line in (completed.stdout + completed.stderr).splitlines()
        if "[DEBUG]" not in line or "In file" in line
    ]
    assert completed.returncode == 0, "Snakefile or rules/ not formatted (make format):\n" + "\n".join(named)


def test_import_layers():
    completed = run(tool("lint-imports"), "--no-cache", "--no-logo")
    assert completed.returncode == 0, "import-linter contracts (pyproject.toml) broken:\n" + report(completed)


# ---- sizes and imports, read from the syntax tree ----


def library_modules() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the last one."""
    body = function.body
    if (
        isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_body_lines_counts_the_code_after_the_docstring():
    source = (
        'def f(\n    a,\n):\n    """Doc\n    string."""\n    x = a\n\n    return [\n        x]\n\n'
        'def g():\n    """Only a docstring."""\n'
    )
    found = {node.name: body_lines(node) for node in functions(ast.parse(source))}
    assert found == {"f": 4, "g": 0}


def test_functions_and_modules_are_small():
    long_functions, long_modules = [], []
    for path in library_modules():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            long_modules.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for function in functions(ast.parse(text, filename=str(path))):
            size = body_lines(function)
            if size > MAX_FUNCTION_LINES:
                long_functions.append(f"{where(path, function)} {function.name}: {size} lines")
    problems = []
    if long_functions:
        problems.append(
            f"{len(long_functions)} functions longer than {MAX_FUNCTION_LINES} lines (body, docstring "
            "excluded):\n  " + "\n  ".join(long_functions)
        )
    if long_modules:
        problems.append(
            f"{len(long_modules)} modules longer than {MAX_MODULE_LINES} lines:\n  " + "\n  ".join(long_modules)
        )
    assert not problems, "\n".join(problems)


def library_imports_in(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """Imports of the library (``import sbmoe...``, ``from sbmoe... import``, relative imports and
    ``importlib.import_module("sbmoe...")``) anywhere inside ``function``."""
    found = []
    for node in ast.walk(function):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "sbmoe" for alias in node.names):
            found.append(node)
        elif isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").split(".")[0] == "sbmoe"):
            found.append(node)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).split(".")[0] == "sbmoe"
        ):
            found.append(node)
    return found


def test_library_imports_itself_at_module_level_only():
    offenders = set()
    for path in library_modules():
        for function in functions(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for node in library_imports_in(function):
                offenders.add(f"{where(path, node)} in {function.name}: {ast.unparse(node)}")
    assert not offenders, "sbmoe imported inside a function (import it at the top of the module):\n  " + "\n  ".join(
        sorted(offenders)
    )


def test_import_check_finds_imports_in_functions():
    source = (
        "import sbmoe.io\n"
        "def f():\n    from sbmoe.io import errors\n    import numpy\n"
        "def g():\n    def inner():\n        from . import atomic\n"
        "    return importlib.import_module('sbmoe.io.runs')\n"
    )
    found = {
        (function.name, ast.unparse(node))
        for function in functions(ast.parse(source))
        if function.name != "inner"
        for node in library_imports_in(function)
    }
    assert found == {
        ("f", "from sbmoe.io import errors"),
        ("g", "from . import atomic"),
        ("g", "importlib.import_module('sbmoe.io.runs')"),
    }


def test_no_module_imports_itself_through_others():
    """No import cycle between any two of the library's modules (grimp, import-linter's graph)."""
    import grimp  # import-linter's own graph library (the test extra)

    graph = grimp.build_graph("sbmoe")
    cycles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported != module and graph.chain_exists(importer=imported, imported=module)
    )
    assert not cycles, f"modules importing each other through a cycle: {cycles}"
