"""Running a page's examples as a reader would paste them: one bash session per page.

The page's shell blocks, and its Python blocks as ``python - <<EOF`` heredocs, run in order
in one ``bash`` (``set -e -o pipefail``), in the page's folder, so variables and background
jobs (``shadowline serve ... &``) carry from block to block.  ``8000``, the documented port,
is replaced by the page's free port.  Every ``curl`` reports its status through a ``.curlrc``
(``--write-out`` to stderr), so no example needs to say how to check it: a status is
expected to be 2xx unless the comment line right under the command says otherwise
(``# 409: {...}``).  When the session ends, whatever it left running is stopped with it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.docs.blocks import PYTHON, SHELL, Block

DOCUMENTED_PORT = "8000"
_CURL_MARK = "@@curl"
_STATUS_COMMENT = re.compile(r"^#\s*(\d{3}):")


@dataclass(frozen=True)
class Expected:
    """A ``curl`` of a block and the status class its page promises (``2xx`` or ``409``)."""

    where: str
    command: str
    status: str

    def met_by(self, status: int) -> bool:
        return str(status) == self.status if self.status.isdigit() else 200 <= status < 300


@dataclass(frozen=True)
class Session:
    """What a page's session did: exit code, output, each curl's status, the doc line of
    the command that failed (if one did)."""

    code: int
    stdout: str
    stderr: str
    statuses: list[int]
    failed_at: str | None


def runnable(blocks: list[Block]) -> list[Block]:
    """The blocks of a page that its session runs (not marked, shell or Python)."""
    return [b for b in blocks if b.marker is None and b.language in SHELL | PYTHON]


def localize(text: str, port: int) -> str:
    """``text`` with the documented port replaced by ``port``."""
    text = re.sub(rf":{DOCUMENTED_PORT}\b", f":{port}", text)
    return re.sub(rf"--port {DOCUMENTED_PORT}\b", f"--port {port}", text)


def commands(text: str) -> list[tuple[str, list[str]]]:
    """Each command of a shell block (continuation lines joined) and the comment lines
    right under it."""
    found: list[tuple[str, list[str]]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if current:
            current += " " + stripped
        elif stripped.startswith("#"):
            if found:
                found[-1][1].append(stripped)
            continue
        elif stripped:
            current = stripped
        if current and not current.endswith("\\"):
            found.append((current, []))
            current = ""
    return found


def expectations(blocks: list[Block]) -> list[Expected]:
    """The status each ``curl`` of the runnable blocks must get, in order."""
    wanted = []
    for block in runnable(blocks):
        if block.language not in SHELL:
            continue
        for command, comments in commands(block.text):
            if command.split(maxsplit=1)[0] != "curl":
                continue
            status = next(
                (m.group(1) for c in comments[:1] if (m := _STATUS_COMMENT.match(c))), "2xx"
            )
            wanted.append(Expected(where=block.where, command=command, status=status))
    return wanted


def script(blocks: list[Block], port: int) -> tuple[str, dict[int, str]]:
    """The session's script and, for each of its lines, the doc line it came from."""
    lines = ["set -e -o pipefail", "trap 'echo \"@@failed $LINENO\" >&2' ERR"]
    origin: dict[int, str] = {}
    for block in runnable(blocks):
        body = localize(block.text, port).splitlines()
        if block.language in PYTHON:
            code = len(body)
            body = ["python - <<'PYTHON_BLOCK'", *body, "PYTHON_BLOCK"]
            offsets = [0, *range(code), max(code - 1, 0)]
        else:
            offsets = list(range(len(body)))
        for offset, line in zip(offsets, body, strict=True):
            lines.append(line)
            origin[len(lines)] = f"{block.page}:{block.line + 1 + offset}"
    return "\n".join(lines) + "\n", origin


def write_curlrc(folder: Path) -> Path:
    """A ``.curlrc`` that makes every curl report its status and URL on stderr."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".curlrc").write_text(
        f'write-out = "%{{stderr}}{_CURL_MARK} %{{http_code}} %{{url_effective}}\\n"\n'
    )
    return folder


def environment(cwd: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    """A clean environment: the project's executables first, no ``SHADOWLINE_*`` of the
    machine's, the page's port and its own settings."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(cwd)),
        "LANG": "C.UTF-8",
        "CURL_HOME": str(write_curlrc(cwd / ".curl")),
        "SHADOWLINE_PORT": str(port),
    }
    return {**env, **extra}


def run_session(
    blocks: list[Block], cwd: Path, port: int, env: dict[str, str], timeout_s: float
) -> Session:
    """Run the page's blocks in one bash in ``cwd``; stop everything it started after."""
    text, origin = script(blocks, port)
    (cwd / "page.sh").write_text(text)
    out, err = cwd / "page.out", cwd / "page.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        bash = subprocess.Popen(
            ["bash", "page.sh"],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = bash.wait(timeout_s)
        except subprocess.TimeoutExpired:
            code = -1
        finally:
            _stop_group(bash.pid)
    errors = err.read_text(errors="replace")
    failed = re.findall(r"^@@failed (\d+)$", errors, re.M)
    statuses = [int(s) for s in re.findall(rf"^{_CURL_MARK} (\d+) ", errors, re.M)]
    return Session(
        code=code,
        stdout=out.read_text(errors="replace"),
        stderr=errors,
        statuses=statuses,
        failed_at=origin.get(int(failed[0])) if failed else None,
    )


def _stop_group(pgid: int) -> None:
    """SIGTERM the session's process group (a scorer it left running), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
