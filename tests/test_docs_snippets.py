"""Every ```python block of README.md and docs/*.md works, so the docs cannot rot.

The convention (docs/README of the snippets, also in docs/api.md's sources):
- a block whose first line is ``# file: PATH`` is that file of the repository, verbatim;
  ``# file: PATH#NAME`` is the top-level function or class NAME of that file (with its
  decorators), verbatim.  Those files are run by their own tests (examples/minimal by
  functional_tests/test_minimal_example.py, which also runs docs/api.md's curl lines);
- any other ```python block is a complete script: it is run as it is, in a fresh
  interpreter with comet-server installed and no Django settings, and must exit 0;
- code not meant to run uses another fence: ```console (shell lines, ``$`` prompts),
  ```text, ```js, ```nginx, ```yaml...
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
FILE = re.compile(r"# file: ([\w./-]+?)(?:#(\w+))?\n")


def blocks(language: str) -> list[tuple[str, int, str]]:
    """(doc, n-th block, code) of every block in that language."""
    found = []
    for doc in DOCS:
        numbered = [m for m in BLOCK.finditer(doc.read_text()) if m.group(1) == language]
        found += [(doc.relative_to(ROOT).as_posix(), i, m.group(2))
                  for i, m in enumerate(numbered, 1)]
    return found


PYTHON = blocks("python")


def ids(items: list[tuple[str, int, str]]) -> list[str]:
    return [f"{doc}:{n}" for doc, n, _code in items]


def test_the_docs_have_python_blocks_and_no_other_python_fence() -> None:
    assert len(PYTHON) >= 5
    for doc in DOCS:
        fences = re.findall(r"^```(\w+)", doc.read_text(), re.M)
        assert not {"py", "python3", "pycon"} & set(fences), f"{doc}: use ```python"


def definition(path: Path, name: str) -> str:
    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "\n".join(source.splitlines()[first - 1:node.end_lineno])
    raise AssertionError(f"{path} has no top-level {name}")


@pytest.mark.parametrize(("doc", "n", "code"), PYTHON, ids=ids(PYTHON))
def test_python_block(doc: str, n: int, code: str, tmp_path: Path) -> None:
    named = FILE.match(code)
    if named:
        path = ROOT / named.group(1)
        assert path.is_file(), f"{doc} block {n}: no file {named.group(1)}"
        body = code[named.end():].rstrip()
        expected = definition(path, named.group(2)) if named.group(2) \
            else path.read_text().rstrip()
        assert body == expected, f"{doc} block {n} differs from {named.group(0).strip()}"
        return
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "COMET_"))}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{doc} block {n} failed:\n{done.stdout}\n{done.stderr}"


def test_relative_links_point_at_files() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)|src=\"([^\"]+)\"",
                                 doc.read_text()):
            link = next(t for t in target if t)
            if re.match(r"\w+://", link):
                continue
            path = (doc.parent / link).resolve()
            assert path.exists(), f"{doc.name} links to a missing {link}"
