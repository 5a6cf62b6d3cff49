"""The documentation says what exists, and everything that exists is documented.

Settings are read from the settings classes and commands from the ``shadowline`` Typer app
(tests/docs/reference.py), never from a list kept by hand.  No services: these run offline.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.docs.blocks import (
    JSON,
    PASTED,
    ROOT,
    SHELL,
    blocks,
    code_spans,
    pages,
    prose,
    read,
    sections,
    table_rows,
)
from tests.docs.pages import PAGES
from tests.docs.reference import Command, commands, runs_alone, setting_names

# Pages written by other processes: their blocks record what a run did, they are not examples.
REPORTS = {
    "docs/benchmarks.md": "written by make bench",
    "docs/reliability.md": "its measurements are written by make reliability",
}
_SETTING = re.compile(r"SHADOWLINE_[A-Z0-9_]*\*?")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
_SHELL_END = {"|", "||", "&&", ";", "&", ">", ">>", "2>&1", ")", "<"}
# Where a shell command starts: a line, a pipe or list, a $( ); environment assignments and a
# path to the executable may come first.  (`kubectl -n shadowline ...` is no such start.)
_COMMAND = re.compile(
    r"(?:^|[;&|(])\s*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:[\w.-]*/)*shadowline(?= [a-z])", re.M
)


def _everything() -> str:
    return "\n".join(read(page) for page in pages())


def test_every_documented_setting_exists_and_every_setting_is_documented() -> None:
    names = setting_names()
    documented = set(_SETTING.findall(_everything()))
    unknown = set()
    for token in documented:
        if token.endswith(("*", "_")):  # a family, e.g. SHADOWLINE_GUARD_*
            if not any(name.startswith(token.rstrip("*")) for name in names):
                unknown.add(token)
        elif token not in names:
            unknown.add(token)
    assert not unknown, f"documented but not a setting of any process: {sorted(unknown)}"
    missing = sorted(set(names) - documented)
    assert not missing, f"settings no page spells out: {missing}"


def _mentions(text: str, known: dict[str, Command]) -> list[tuple[str, list[str]]]:
    """Each ``shadowline ...`` in ``text``: the command path it names and the options
    written after it (up to the end of that shell command)."""
    found = []
    for start in _COMMAND.finditer(text):
        rest = text[start.end() :].split("\n", 1)[0]
        words = rest.split()
        path = "shadowline"
        taken = 0
        for word in words:
            if f"{path} {word}" in known:
                path, taken = f"{path} {word}", taken + 1
            else:
                break
        if path == "shadowline":
            continue  # prose such as "shadowline is": not a command
        options = []
        for word in words[taken:]:
            if word in _SHELL_END or word.startswith("#"):
                break
            options += _OPTION.findall(word)
        found.append((path, options))
    return found


def _unknown(text: str, known: dict[str, Command]) -> list[str]:
    """Each ``shadowline A B`` in ``text`` whose words leave the command tree: a word after
    a group that is none of its subcommands (a command that was renamed or removed)."""
    wrong = []
    for start in _COMMAND.finditer(text):
        path = "shadowline"
        words = re.match(r"((?: [a-z][a-z0-9-]*)+)", text[start.end() :])
        for word in words.group(1).split() if words else []:
            if f"{path} {word}" in known:
                path = f"{path} {word}"
            elif path == "shadowline" or known[path].is_group:
                wrong.append(f"{path} {word}")
                break
            else:
                break
    return wrong


def test_every_documented_command_and_option_exists() -> None:
    known = commands()
    wrong = []
    for page in pages():
        texts = code_spans(prose(page))
        texts += [b.text.replace("\\\n", " ") for b in blocks(page) if b.language in SHELL]
        for text in texts:
            wrong += [f"{page}: no command `{path}`" for path in _unknown(text, known)]
            for path, options in _mentions(text, known):
                wrong += [
                    f"{page}: `{path}` has no {o}" for o in options if o not in known[path].options
                ]
    assert not wrong, "\n".join(wrong)


def _reference_rows() -> dict[str, list[tuple[str, str]]]:
    """command path -> (page, section text) of each table row whose first cell is that
    command's synopsis."""
    known = commands()
    rows: dict[str, list[tuple[str, str]]] = {}
    for page in pages():
        for section in sections(page):
            for row in table_rows(section):
                spans = code_spans(row[0])
                if not spans or not spans[0].startswith("shadowline "):
                    continue
                [(path, _)] = _mentions(spans[0], known) or [("?", [])]
                assert path != "?", f"{page}: `{spans[0]}` names no command"
                rows.setdefault(path, []).append((page, section))
    return rows


def test_every_command_has_a_reference_row_and_its_options_are_explained_there() -> None:
    rows = _reference_rows()
    problems = []
    for path, command in commands().items():
        if not runs_alone(command):
            continue
        if path not in rows:
            problems.append(f"no table row documents `{path}`")
            continue
        text = "\n".join(section for _, section in rows[path])
        problems += [
            f"`{path} {option}` is not explained beside its row ({rows[path][0][0]})"
            for option in sorted(command.options)
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)
        ]
    assert not problems, "\n".join(problems)


def test_every_pasted_block_is_run_checked_or_marked_with_a_reason() -> None:
    problems = []
    for page in pages():
        if page in REPORTS:
            continue
        spec = PAGES.get(page)
        for block in blocks(page):
            if block.language not in PASTED:
                continue
            if block.marker == "illustrative":
                if len(block.reason) < 10:
                    problems.append(f"{block.where}: say why it is illustrative")
            elif block.marker == "tested":
                test_file = ROOT / block.reason.split()[0]
                if not test_file.is_file() or Path(page).name not in test_file.read_text():
                    problems.append(f"{block.where}: {test_file} does not read {page}")
            elif spec is None:
                problems.append(f"{block.where}: not run (add the page to tests/docs/pages.py)")
            elif block.language in JSON and spec.json_block is None:
                problems.append(f"{block.where}: a JSON block the page's test does not check")
    assert not problems, "\n".join(problems)
    for page in PAGES:  # no stale entries: each page listed has something to run
        assert any(b.marker is None and b.language in PASTED for b in blocks(page)), page


def _slug(heading: str) -> str:
    """The anchor a code host gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for page in pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            file, _, anchor = target.partition("#")
            path = (ROOT / page).parent / file if file else ROOT / page
            if not path.exists():
                broken.append(f"{page}: {target}")
            elif anchor and path.suffix == ".md":
                headings = re.findall(r"^#{1,6} (.+)$", prose(str(path.relative_to(ROOT))), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_is_short_and_has_the_picture_the_set_up_and_the_tour() -> None:
    text = read("README.md")
    assert len(text.splitlines()) <= 160
    [diagram] = [b for b in blocks("README.md") if b.language == "mermaid"]
    for part in (
        "scorer",
        "sidecar",
        "shadow",
        "scores topic",
        "labels topic",
        "archiver",
        "Parquet",
        "analysis",
        "registry",
        "retrain worker",
        "review page",
        "admin API",
        "Prometheus",
        "Alertmanager",
        "Grafana",
    ):
        assert part.lower() in diagram.text.lower(), part
    shell = "\n".join(b.text for b in blocks("README.md") if b.language in SHELL)
    for step in (
        "make demo",
        "make test",
        "shadowline serve",
        "/v1/score",
        "shadows",
        "/approve",
        "/promote",
        "shadowline models rollback",
    ):
        assert step in shell, step
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", text))
    assert linked >= {Path(p).name for p in pages() if p.startswith("docs/")}


def test_the_alert_table_lists_every_rule_with_its_window_and_severity() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
    wanted = {
        (rule["alert"], rule["for"], rule["labels"]["severity"])
        for group in rules
        for rule in group["rules"]
    }
    listed = {
        (row[0], row[1], row[2])
        for row in table_rows(read("docs/operations.md"))
        if len(row) == 3 and row[0].startswith("Shadowline")
    }
    assert listed == wanted
