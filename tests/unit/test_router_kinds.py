"""The kind registry and the module layering of ``router_training``: every registered kind
resolves to a loader, and no module imports, even inside a function, one that imports it back."""

from __future__ import annotations

import ast
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

import router_training
from router_training.artifact import ArtifactError
from router_training.kinds import KINDS, kind_spec
from router_training.manifest import Manifest

PACKAGE = Path(router_training.__file__).parent
KIND_MODULES = {"bert", "encoder", "ensemble", "linear", "tfidf"}


def test_every_manifest_kind_is_registered_with_an_importable_loader() -> None:
    assert set(KINDS) == set(typing.get_args(Manifest.model_fields["kind"].annotation))
    for name, spec in KINDS.items():
        assert spec.name == name
        module, _, function = spec.loader.partition(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))
        assert spec.required_files and all(spec.required_files)


def test_an_unknown_kind_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="unknown router kind 'nope'"):
        kind_spec("nope")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, modules: set[str]) -> Iterator[str]:
    """Every ``router_training`` module a file imports: at the top, in functions, under
    ``TYPE_CHECKING`` (``importlib`` string loads are data and not counted)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                yield child if child in modules else node.module


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {
        name: set(_imported(ast.parse(path.read_text()), modules)) - {name}
        for name, path in files.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            found = visit(imported, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    return next((c for c in (visit(m, []) for m in sorted(graph)) if c), None)


def test_router_training_has_no_import_cycles() -> None:
    graph = _import_graph()
    assert "router_training.kinds" in graph and len(graph) > 20
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_artifact_format_imports_no_model_kind() -> None:
    graph = _import_graph()
    for low in ("artifact", "kinds", "manifest", "card", "config"):
        imported = {name.rsplit(".", 1)[-1] for name in graph[f"router_training.{low}"]}
        assert not imported & KIND_MODULES, (low, imported & KIND_MODULES)
