"""The docs: generated pages fresh, every link and anchor resolving, the README short."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from edge_runtime.metrics import Metrics
from edge_runtime.settings import iter_settings
from tests.support.paths import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """The page without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a page."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", _prose(path), re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


def _resolves(page: Path, target: str) -> bool:
    path_part, _, anchor = target.partition("#")
    linked = (page.parent / path_part).resolve() if path_part else page
    if not linked.exists():
        return False
    return not anchor or linked.suffix != ".md" or anchor in _anchors(linked)


def test_the_generated_pages_are_fresh() -> None:
    generator = runpy.run_path(str(REPO / "scripts" / "gen_docs.py"))
    for name, render in generator["PAGES"].items():
        assert (DOCS / name).read_text(encoding="utf-8") == render(), f"run make docs ({name})"


def test_every_setting_and_metric_is_documented() -> None:
    configuration = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for spec in iter_settings():
        assert f"`{spec.env}`" in configuration, spec.key
        assert f"`{spec.flag}`" in configuration, spec.key
    metrics = (DOCS / "metrics.md").read_text(encoding="utf-8")
    for metric in Metrics().registry.collect():
        assert f"`{metric.name}" in metrics, metric.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        if not _resolves(page, target):
            broken.append(target)
    assert broken == []


def test_the_readme_stays_short() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 200
