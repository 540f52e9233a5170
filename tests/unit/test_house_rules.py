"""The house's size rules (docs/architecture.md): no Python file over 400 lines and no function
over 60, in the packages, the benchmarks and the tests; data modules are exempt."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("orchestrator", "cascade", "router_training", "adapter_training", "bench", "tests")
DATA_MODULES = {Path("router_training/samples/vocab.py")}  # the shipped sample's vocabulary
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _python_files() -> list[Path]:
    files = [p for folder in CODE for p in sorted((ROOT / folder).rglob("*.py"))]
    return [p for p in files if p.relative_to(ROOT) not in DATA_MODULES]


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    too_long = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    return too_long


def test_the_tree_has_python_files() -> None:
    assert len(_python_files()) > 100  # the rules below must not pass on an empty walk


def test_no_file_over_the_limit() -> None:
    sizes = {p: p.read_text(encoding="utf-8").count("\n") for p in _python_files()}
    assert [f"{p.relative_to(ROOT)} ({n})" for p, n in sizes.items() if n > MAX_FILE_LINES] == []


def test_no_function_over_the_limit() -> None:
    assert [f for path in _python_files() for f in _long_functions(path)] == []
