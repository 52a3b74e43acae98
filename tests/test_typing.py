"""The package type-checks: mypy is clean over the installed ferroq (stubs for the extension
included), so the public API's annotations are true."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_mypy_is_clean_on_the_package(tmp_path):
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), "-p", "ferroq"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
