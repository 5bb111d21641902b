"""The wheel carries the templates: a non-editable install used from another folder still renders pages."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (found,) = out.glob("attnviz-*.whl")
    return found


def test_wheel_contains_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "templates").iterdir()}
    assert templates and {f"attnviz/templates/{name}" for name in templates} <= names
    assert "attnviz/py.typed" in names
    schemas = {f"attnviz/output/schema_files/{kind}.schema.json" for kind in ("summary", "compare")}
    assert schemas <= names
    assert "attnviz/assets/sentiment_head/attnviz_head.json" in names


def test_installed_copy_finds_templates_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import attnviz, attnviz.output.html as h; "
        "print(attnviz.__file__); print(h.templates_dir()); "
        "print(h.render_template('_legend.html.j2', palette=['#fff']))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, check=True
    )
    package_file, templates, legend = done.stdout.split("\n", 2)
    assert package_file.startswith(str(site))
    assert templates == str(site / "attnviz" / "templates")
    assert 'class="legend"' in legend
