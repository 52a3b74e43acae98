"""The project's documents point only at documents the repository holds: no file cites an outside
reference document, and every ``docs/numerics.md §X.Y`` names a section that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMERICS = ROOT / "docs" / "numerics.md"

#: Documents that were never part of the repository (written as a pattern, so that this file does
#: not mention them itself).
OUTSIDE_DOCUMENTS = re.compile(r"\b(?:SPEC|API|PERF|STYLE)\.md\b|\.\./shared\b", re.IGNORECASE)
#: A numbered heading of docs/numerics.md: "## 2. Dynamic Linear", "### 2.1 Forward, ...".
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)
#: "docs/numerics.md" followed by one or more section marks: "§2.1", "§4 and §5", "§4.1, §4.3".
REFERENCE = re.compile(r"docs/numerics\.md((?:[\s,/-]*(?:and\s+)?§\d+(?:\.\d+)*)+)")
SECTION_MARK = re.compile(r"§(\d+(?:\.\d+)*)")


def tracked_texts() -> Dict[str, str]:
    """Every tracked text file (outside the golden cases) by path, or a skip outside a git checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    texts = {}
    for name in listed.decode().split("\0"):
        if not name or name.startswith("tests/golden"):
            continue
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary
            continue
        texts[name] = data.decode("utf-8", errors="replace")
    return texts


def sections() -> Set[str]:
    return set(HEADING.findall(NUMERICS.read_text(encoding="utf-8")))


def test_no_file_cites_a_document_outside_the_repository() -> None:
    texts = tracked_texts()
    assert "docs/numerics.md" in texts
    offenders = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in texts.items()
        for m in OUTSIDE_DOCUMENTS.finditer(text)
    ]
    assert offenders == []


def test_numerics_sections_are_numbered_and_unique() -> None:
    numbers = HEADING.findall(NUMERICS.read_text(encoding="utf-8"))
    assert len(numbers) == len(set(numbers))
    # Every subsection sits under its section: "2.3" needs "2".
    for number in numbers:
        assert number.split(".")[0] in numbers, number


def test_every_reference_to_numerics_names_an_existing_section() -> None:
    known = sections()
    references: List[str] = []
    for name, text in tracked_texts().items():
        for m in REFERENCE.finditer(text):
            references += [f"{name}: §{number}" for number in SECTION_MARK.findall(m.group(1))]
    # The code points at the document from many places; a broken pattern would find none.
    assert len(references) >= 40
    missing = [ref for ref in references if ref.rsplit("§", 1)[1] not in known]
    assert missing == []


def test_cross_references_inside_numerics_exist() -> None:
    text = NUMERICS.read_text(encoding="utf-8")
    known = sections()
    marks = SECTION_MARK.findall(text)
    assert marks
    assert [number for number in marks if number not in known] == []
