"""The documentation as data: its pages, their fenced blocks and markers, sections and rows.

A fenced block may be preceded (on the line right above its fence) by one HTML comment:

* ``<!-- illustrative: REASON -->``: not run (a cluster, minutes of work, a placeholder);
* ``<!-- tested: tests/PATH REASON -->``: run by that test module, which names the page.

Every other shell, Python or JSON block of a page is run by ``tests/docs/test_examples.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Blocks a reader would paste: these are run, checked, or marked with a reason.
SHELL, PYTHON, JSON = frozenset({"sh", "bash", "shell"}), frozenset({"python"}), frozenset({"json"})
PASTED = SHELL | PYTHON | JSON
_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```\n", re.M | re.S)
_MARKER = re.compile(r"<!--\s*(illustrative|tested):\s*(.*?)\s*-->\s*\n$", re.S)


@dataclass(frozen=True)
class Block:
    """One fenced block: its page (relative to the repository), the line of its opening
    fence (1-based), its language, its text and the marker above it, if any."""

    page: str
    line: int
    language: str
    text: str
    marker: str | None  # "illustrative" or "tested"
    reason: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[str]:
    """The README and every page under ``docs/``, relative to the repository."""
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def read(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def blocks(page: str) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = read(page)
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        marker = _MARKER.search(before[-600:])
        found.append(
            Block(
                page=page,
                line=before.count("\n") + 1,
                language=match.group(1),
                text=match.group(2),
                marker=marker.group(1) if marker else None,
                reason=marker.group(2) if marker else "",
            )
        )
    return found


def prose(page: str) -> str:
    """``page`` without its fenced blocks (what the reference tables and sentences say)."""
    return _FENCE.sub("", read(page))


def sections(page: str) -> list[str]:
    """The text under each heading of ``page`` up to the next heading, fenced blocks
    removed (the text before the first heading is a section too)."""
    text = prose(page)
    starts = [m.start() for m in re.finditer(r"^#{1,6} ", text, re.M)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    ends = [*starts[1:], len(text)]
    return [text[start:end] for start, end in zip(starts, ends, strict=True)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or re.fullmatch(r"\|[\s|:-]+\|", line):
            continue
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([cell.strip() for cell in cells])
    return rows


def code_spans(text: str) -> list[str]:
    """The contents of the inline code spans of ``text``."""
    return re.findall(r"`([^`\n]+)`", text)
