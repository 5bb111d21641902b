"""The package is grouped by stage and data flows one way: inputs → model → analysis → output.

Only ``attnviz/model/`` may use torch, transformers or captum; ``analysis/`` and ``output/`` never
reach back into the model stage (or the API above it), so after capture nothing needs torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "attnviz"
TORCH_SIDE = ("torch", "transformers", "captum", "accelerate")
#: stage → the attnviz modules it must not import (anywhere in the file, lazy imports included).
FORBIDDEN = {
    "analysis": ("attnviz.model", "attnviz.api", "attnviz.cli", "attnviz.output", *TORCH_SIDE),
    "output": ("attnviz.model", "attnviz.api", "attnviz.cli", *TORCH_SIDE),
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_stage_imports_nothing_upstream_or_torch(stage: str) -> None:
    offences = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / stage).rglob("*.py"))
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[stage])
    ]
    assert not offences, "\n".join(offences)


def test_analysis_and_output_load_without_torch() -> None:
    code = (
        "import sys, pkgutil, importlib, attnviz.analysis, attnviz.output\n"
        "for pkg in (attnviz.analysis, attnviz.output):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'captum') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_torch_lives_only_in_the_model_stage() -> None:
    outside = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "model" not in path.relative_to(PACKAGE).parts[:1]
        for name in _imports(path)
        if name.split(".")[0] in TORCH_SIDE
    ]
    assert not outside, "\n".join(outside)


def test_renderers_do_not_know_tasks() -> None:
    """Task-specific parts of a page come from the task adapter (``Capture.panel``); outputs never test task names."""
    from attnviz.model.tasks import list_tasks

    names = list_tasks()
    sources = [*sorted((PACKAGE / "output").rglob("*.py")), *sorted((PACKAGE.parent / "templates").glob("*.j2"))]
    offences = [
        f"{path.name}: {line.strip()}"
        for path in sources
        for line in path.read_text(encoding="utf-8").splitlines()
        for name in names
        if f'"{name}"' in line or f"'{name}'" in line
    ]
    assert not offences, "\n".join(offences)
