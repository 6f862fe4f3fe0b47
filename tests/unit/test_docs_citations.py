"""The repository documents itself: no file cites design notes that live outside it, every relative
link in the docs resolves to a file (and its ``#anchor`` to a heading of that file), and every
``docs/<file>.md#<section>`` citation in code comments points at a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SELF = Path(__file__).resolve()

# Notes kept outside the repository while it was designed; the repository must not depend on them.
EXTERNAL_NOTES = ("amplitude-api.md", "DESIGN.md", "HOUSE_STYLE.md")
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".html", ".j2", ".css", ".js", ".json", ".csv", ".cfg", ".ini"}

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.MULTILINE)
AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# ``docs/amplitude.md#user-search`` and ``docs/amplitude.md#user-search, #user-activity``.
CITATION = re.compile(r"docs/([\w.-]+\.md)((?:#[\w-]+)(?:,\s*(?:and\s+)?#[\w-]+)*)?")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to
    hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def strip_code(markdown: str) -> str:
    """``markdown`` without fenced code blocks (whose ``#`` lines are not headings)."""
    return FENCE.sub("", markdown)


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a Markdown document, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for match in HEADING.finditer(strip_code(markdown)):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(markdown: str) -> list[str]:
    """Link targets that point inside the repository (no scheme), code excluded."""
    text = CODE_SPAN.sub("", strip_code(markdown))
    targets = [m.group(1) for m in INLINE_LINK.finditer(text)]
    targets += [m.group(1) for m in REFERENCE_LINK.finditer(text)]
    return [t for t in targets if not SCHEME.match(t)]


def link_problem(source: Path, target: str) -> str | None:
    """Why the link ``target`` written in ``source`` does not resolve, or ``None``."""
    path_part, _, anchor = target.partition("#")
    dest = (source.parent / path_part).resolve() if path_part else source
    if not dest.exists():
        return f"{target}: no such file"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
        return f"{target}: no heading with anchor #{anchor} in {dest.name}"
    return None


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def text_files(*tops: str) -> list[Path]:
    files: list[Path] = []
    for top in tops:
        base = ROOT / top
        if base.is_file():
            files.append(base)
            continue
        for path in sorted(base.rglob("*")):
            parts = set(path.relative_to(ROOT).parts)
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in parts:
                files.append(path)
    return [f for f in files if f.resolve() != SELF]


def test_docs_exist() -> None:
    assert (ROOT / "docs" / "amplitude.md").is_file()
    assert (ROOT / "docs" / "README.md").is_file()


def test_no_citation_of_notes_outside_the_repository() -> None:
    offenders = []
    for path in text_files("src", "docs", "README.md", "tests", "bench"):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            offenders += [f"{path.relative_to(ROOT)}:{number}: {name}" for name in EXTERNAL_NOTES if name in line]
    assert offenders == [], "cite the docs/ file instead:\n" + "\n".join(offenders)


def test_relative_links_in_docs_resolve() -> None:
    problems = []
    for path in doc_files():
        for target in relative_links(path.read_text(encoding="utf-8")):
            problem = link_problem(path, target)
            if problem:
                problems.append(f"{path.relative_to(ROOT)}: {problem}")
    assert problems == [], "\n".join(problems)


def test_docs_citations_in_code_and_docs_resolve() -> None:
    """``docs/<file>.md#<section>`` in comments, docstrings and docs names a real file and heading."""
    problems = []
    for path in text_files("src", "docs", "README.md", "tests", "bench"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CITATION.finditer(text):
            target = ROOT / "docs" / match.group(1)
            line = text.count("\n", 0, match.start()) + 1
            where = f"{path.relative_to(ROOT)}:{line}: {match.group(0)}"
            if not target.is_file():
                problems.append(f"{where}: no such file")
                continue
            known = anchors(target.read_text(encoding="utf-8"))
            cited = re.findall(r"#([\w-]+)", match.group(2) or "")
            problems += [f"{where}: no heading #{a}" for a in cited if a not in known]
    assert problems == [], "\n".join(problems)


def test_amplitude_facts_keep_their_cited_sections() -> None:
    """The sections code comments cite by name (renaming one breaks every citation)."""
    known = anchors((ROOT / "docs" / "amplitude.md").read_text(encoding="utf-8"))
    wanted = {
        "hosts-and-regions", "authentication", "user-search", "user-activity", "identifiers", "rate-limits",
        "our-budget-fraction", "throttling-and-backoff", "deletion-api-v1", "creating-deletions",
        "listing-deletion-jobs", "removing-a-user-from-a-job", "job-lifecycle", "deletion-limits",
        "org-wide-deletion", "dsar-export-api", "creating-and-polling-an-export", "downloading-outputs",
        "dsar-limits-and-sla", "test-connection-calls", "gotchas", "unconfirmed", "sources",
    }  # fmt: skip
    assert wanted - known == set()


# The checker itself: each rule must be able to fail.


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Rate limits", "rate-limits"),
        ("`manifest.json`", "manifestjson"),
        ("Test-connection calls", "test-connection-calls"),
        ("`status [REQUEST_ID]`", "status-request_id"),
        ('What "done" means', "what-done-means"),
        ("See [the API](http://x.example)", "see-the-api"),
    ],
)
def test_slug(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_anchors_skip_code_blocks_and_number_duplicates() -> None:
    text = "# Title\n\n```bash\n# not a heading\n```\n\n## Part\n\n## Part\n"
    assert anchors(text) == {"title", "part", "part-1"}


def test_relative_links_ignore_urls_and_code() -> None:
    text = (
        "[a](a.md) [b](https://example.com/b.md) `[c](c.md)` <https://example.com>\n"
        '```\n[d](d.md)\n```\n[e]: e.md#x\n![img](plots/p.png "title")\n'
    )
    assert relative_links(text) == ["a.md", "plots/p.png", "e.md#x"]


def test_link_problem_detects_missing_file_and_anchor(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n\n## Known part\n", encoding="utf-8")
    assert link_problem(doc, "doc.md#known-part") is None
    assert link_problem(doc, "#known-part") is None
    assert link_problem(doc, "missing.md") == "missing.md: no such file"
    problem = link_problem(doc, "#unknown") or ""
    assert "no heading with anchor #unknown" in problem


def test_citation_pattern_finds_every_anchor() -> None:
    found = [(m.group(1), re.findall(r"#([\w-]+)", m.group(2) or "")) for m in CITATION.finditer(
        "see ``docs/amplitude.md#user-search`` and (docs/amplitude.md#user-search, #user-activity) or docs/cli.md"
    )]  # fmt: skip
    assert found == [
        ("amplitude.md", ["user-search"]),
        ("amplitude.md", ["user-search", "user-activity"]),
        ("cli.md", []),
    ]
