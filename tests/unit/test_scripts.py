"""The project's scripts name test files that exist (``make soak`` broke when tests moved)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.paths import REPO

SCRIPTS = [
    *sorted(p for p in (REPO / "scripts").iterdir() if p.is_file()),
    REPO / "Makefile",
    REPO / ".ci" / "run",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_test_file_a_script_names_exists(script: Path) -> None:
    named = re.findall(r"\btests/[\w/]+\.py\b", script.read_text(encoding="utf-8"))
    missing = [path for path in named if not (REPO / path).is_file()]
    assert not missing, f"{script.name} names {missing}"
