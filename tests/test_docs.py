"""The docs point only at this repository: every relative link and every named Markdown file exists."""

from __future__ import annotations

import re
from pathlib import Path

from socle_devstack.stack import REPO_ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
NAMED_PAGE = re.compile(r"`([\w./-]+\.md)`")


def _pages() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def _exists(name: str, page: Path) -> bool:
    return (page.parent / name).exists() or (REPO_ROOT / name).exists()


def test_every_relative_link_and_named_page_of_the_docs_is_in_the_repository() -> None:
    markdown_names = {p.name for p in REPO_ROOT.rglob("*.md") if ".venv" not in p.parts}
    dangling = []
    for page in _pages():
        text = page.read_text()
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            if not _exists(target.split("#", 1)[0], page):
                dangling.append(f"{page.relative_to(REPO_ROOT)}: link to {target}")
        for name in NAMED_PAGE.findall(text):
            if "NNNN" not in name and not _exists(name, page) and Path(name).name not in markdown_names:
                dangling.append(f"{page.relative_to(REPO_ROOT)}: names {name}")
        if "/work/" in text:
            dangling.append(f"{page.relative_to(REPO_ROOT)}: a path of the build machine")
    assert dangling == []
