"""The ``ferroq.load`` fuzzer in the suite: a few thousand mutated files (see ``fuzz_load.py``),
each loaded in a worker subprocess under a memory cap and a timeout, must each load or raise
ValueError. Run it longer by hand: ``python tests/fuzz_load.py --iterations 100000``."""

from __future__ import annotations

import argparse

import pytest

pytest.importorskip("resource")  # the workers' memory cap (POSIX)

import fuzz_load  # noqa: E402


def options(**overrides) -> argparse.Namespace:
    return fuzz_load.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()])


def test_mutated_files_load_or_raise_value_error():
    counts, failures = fuzz_load.run(2500, 13, options(batch=625, jobs=2))
    assert not failures, "\n".join(f"case {f.index}: {f.outcome}" for f in failures)
    assert counts["ValueError"] + counts["loaded"] == 2500
    assert counts["loaded"] > 50 and counts["ValueError"] > 1000  # both outcomes are exercised


def test_a_crash_is_attributed_to_its_case_and_the_batch_goes_on(monkeypatch):
    monkeypatch.setenv(fuzz_load.ABORT_AT, "12")
    counts, failures = fuzz_load.run(20, 5, options(batch=20, jobs=1))
    assert [f.index for f in failures] == [12]
    assert "crash (exit status -6)" in failures[0].outcome
    assert counts["loaded"] + counts["ValueError"] == 19


def test_replay_writes_the_case_file(tmp_path, capsys):
    out = tmp_path / "case.safetensors"
    assert fuzz_load.main(["--replay", "13:0", str(out)]) == 0
    assert "in_features=2147483648" in capsys.readouterr().out
    assert out.stat().st_size > 0
