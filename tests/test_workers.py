"""The parent's one-off child (`auditrelay.workers.run_in_child`): its exit code is the
parent's answer, whatever way the child ends. The workers themselves: tests/e2e/test_workers.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from auditrelay.workers import run_in_child


def test_a_child_that_returns_exits_0_and_runs_in_another_process(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    assert run_in_child(lambda: marker.write_text(str(os.getpid()))) == 0
    assert int(marker.read_text()) != os.getpid()


def test_a_child_that_exits_or_raises_gives_its_code() -> None:
    assert run_in_child(lambda: sys.exit(4)) == 4
    assert run_in_child(lambda: sys.exit("auditrelay: the reason")) == 1

    def fails() -> None:
        raise RuntimeError("boom")

    assert run_in_child(fails) == 1
