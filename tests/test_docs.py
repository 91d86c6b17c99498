"""The README and the documentation pages, checked without network and without MkDocs (a dev
requirement: .ci/run builds the site with `mkdocs build --strict`, which also checks anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAIN_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt"
    " && python run_search.py --space cnn2d.yaml"
)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def relative_links(page: Path) -> list[str]:
    """The link and image targets of a Markdown page outside code, without URLs and pure anchors."""
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text()))
    targets = [match.group(1) for match in LINK.finditer(text)]
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", target)]


def test_the_readme_stays_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_readme_opens_with_the_title_and_its_first_command_is_the_install_and_search():
    text = README.read_text()
    assert text.startswith("# genre-search\n")
    first_block = FENCE.search(text)
    assert first_block is not None
    assert first_block.group(0).startswith("```bash\n")
    assert first_block.group(1).strip() == MAIN_COMMAND


def test_ci_finds_the_test_command_after_the_run_the_tests_line():
    """.ci/run runs the first line of the first ```bash block after the line starting "Run the tests"."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Run the tests"))
    fence = next(i for i in range(start, len(lines)) if lines[i].startswith("```bash"))
    assert "pip install -r requirements.txt" in lines[fence + 1]
    assert lines[fence + 1].endswith("python -m pytest -n 2")


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_that_exists(page):
    missing = [
        target
        for target in relative_links(page)
        if not (page.parent / target.split("#")[0]).exists() or target.startswith("/")
    ]
    assert not missing, f"{page.relative_to(ROOT)}: links to nothing: {missing}"


def test_the_readmes_anchors_into_the_pages_exist():
    """mkdocs checks the pages' anchors; the README is not a page, so its anchors are checked here
    (GitHub's and MkDocs' slugs agree on plain headings: lower case, punctuation dropped, dashes)."""

    def slugs(page: Path) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE)
        return {re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", heading.lower()).strip()) for heading in headings}

    anchored = [target.split("#") for target in relative_links(README) if "#" in target]
    assert [f"{path}#{anchor}" for path, anchor in anchored if anchor not in slugs(ROOT / path)] == []


def test_the_link_checker_sees_links_and_skips_code_and_urls(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "[a](a.md) ![b](img/b.png) [c](c.md#part) [d](https://example.com) [e](#here) `[f](f.md)`\n"
        "```\n[g](g.md)\n```\n"
    )
    assert relative_links(page) == ["a.md", "img/b.png", "c.md#part"]


def test_every_page_is_in_the_site_navigation_and_every_entry_exists():
    def entries(nav) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [page for value in nav.values() for page in entries(value)]
        return [page for item in nav for page in entries(item)]

    listed = entries(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert [page for page in listed if not (DOCS / page).is_file()] == []
    on_disk = {str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md")}
    assert sorted(on_disk - set(listed)) == []
