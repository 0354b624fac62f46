"""The README's Python API example, run headless in a real Jupyter kernel: it builds, and renders as tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "tests" / "notebooks" / "api_example.ipynb"


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_notebook_is_the_readme_example() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert code.split() == _readme_example().split(), "tests/notebooks/api_example.ipynb differs from README.md"


@pytest.mark.slow  # a Jupyter kernel that imports TensorFlow and trains: about 25-40 s here
def test_readme_example_runs_in_a_notebook_and_renders_tables(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    for cell in code:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source

    def html(cell) -> str:
        return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)

    build, validate, bench, result = code[1:]
    assert "mcu" in html(build) and "convert" in html(build)  # live progress block, not stderr lines
    assert not [o for o in build.outputs if o.output_type == "stream" and "convert" in o.get("text", "")]
    assert "<table" in html(validate) and "accuracy vs float" in html(validate)
    assert "<table" in html(bench) and "p50 ms" in html(bench)
    table = html(result)
    assert "<table class='edgebuild'>" in table and "data:image/png;base64," in table  # summary table and chart
    assert table.count("<tr>") == 3 and ">ok<" in table  # header, mcu, mobile
    for target in ("mcu", "mobile"):
        assert (tmp_path / "build" / "sequential" / target / "model.tflite").is_file()
