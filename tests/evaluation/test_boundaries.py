"""lfr must run without the evaluation harness: nothing under lfr/ imports it (the CLI registry names it
as a string and imports it lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

LFR = Path(__file__).resolve().parents[2] / "lfr"


def test_lfr_never_imports_evaluation():
    offenders = []
    for path in LFR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n == "evaluation" or n.startswith("evaluation.")]
    assert offenders == []
