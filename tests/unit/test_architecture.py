"""The domain core stays pure: it must import none of the adapters' libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import lfr.domain

FORBIDDEN = {
    "grpc",
    "faiss",
    "cv2",
    "insightface",
    "onnxruntime",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "prometheus_client",
    "PIL",
    "lfr.adapters",
    "lfr.services",
    "lfr.bootstrap",
    "lfr.cli",
    "evaluation",
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def offending(names: set[str]) -> set[str]:
    return {n for n in names for f in FORBIDDEN if n == f or n.startswith(f + ".")}


def test_domain_imports_only_stdlib_numpy_and_itself():
    domain = Path(lfr.domain.__file__).parent
    problems = {str(p.name): offending(imported_modules(p)) for p in domain.glob("*.py")}
    assert {name: bad for name, bad in problems.items() if bad} == {}


def test_services_import_no_adapter_libraries():
    services = Path(lfr.domain.__file__).parent.parent / "services"
    problems = {
        p.name: {n for n in offending(imported_modules(p)) if not n.startswith("lfr.services")}
        for p in services.glob("*.py")
    }
    assert {name: bad for name, bad in problems.items() if bad} == {}


def test_the_checker_would_catch_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import faiss\nfrom sqlalchemy.orm import Session\nimport numpy\n")
    assert offending(imported_modules(bad)) == {"faiss", "sqlalchemy.orm"}
