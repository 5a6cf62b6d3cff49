"""``shadowline demo`` (what ``make demo`` runs): the whole loop on one machine, in minutes.

1. the local stack (Redis + broker) and a production model: if none, the retrain pipeline
   trains one on synthetic data as it was six weeks before the demo's "today" (a stale model,
   as a team that retrains rarely has); it is approved (forced, with a written reason: a first
   model has nothing to be compared with) and promoted;
2. a challenger trained on the data up to "today", and a control (production's recipe retrained with
   another seed: the noise floor); the challenger goes to shadow when it passes the gates, the
   control whatever they say (they report on it: it measures the noise floor);
3. live traffic through the scorer, with exploration on: a share of production's would-be
   blocks is answered ``review`` so that what blocking hides can be measured;
4. late fraud labels from the synthetic ground truth, pushed to ``POST /v1/labels`` the way a
   chargeback feed would (delays compressed: seconds here stand for days);
5. the evidence: label-free signals, label maturity, every labeled metric with its interval,
   the control's noise floor, and the approval policy's verdict (``shadowline analyze``);
6. approval WITHOUT force (the policy decides), promotion, a request answered by the new
   model, and a rollback.

Every step runs the same ``shadowline`` subcommand a person would type, printed before it
runs, so the demo doubles as a walkthrough.  The stack is left running for exploration.

The demo's "today" is a fixed date (:data:`DEMO_TODAY`), not the calendar's.  The synthetic
fraud moves in cycles (a hot merchant category every 3 weeks, among 4), and on some days the
category that turns hot at the start of the challenger's evaluation window was last hot inside
the stale model's training window but not the challenger's: measured over 71 dates from
2026-01-01 to 2027-06-25, the challenger failed the gates on 5 (a slice's recall) and was no
better than the stale model on 4 more.  Training and data are seeded, so a fixed date tells the
same story every run.  The date only places the synthetic data: scores, records and labels
carry the wall clock.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shadowline import demo_traffic as traffic
from shadowline.settings import STATE_DIR
from shadowline.stack import free_port

Echo = Callable[[str], None]
LABELS_TOKEN = "demo-labels-token"  # noqa: S105 - the demo's own scorer, on 127.0.0.1
EXPLORATION_SHARE = "0.5"
# The first production model is trained on four weeks of data this old, the challenger on eight
# weeks up to today: the synthetic fraud drifts (a new country opens every two weeks and fraud
# follows it), so a stale model misses what a retrained one catches, as in life.
STALE_DAYS = 42
# The demo's "today" (see the module docstring): a date in a stretch where the challenger's
# gain held on every date measured around it (recall +0.22 to +0.28 at 10-day steps, and its
# worst slice within the gates by 0.12).
DEMO_TODAY = datetime(2026, 3, 12, 12, tzinfo=UTC)
TRANSACTIONS = 20_000
FRAUD_SHARE = 0.08
# Traffic comes from a denser synthetic stream than the models were trained on (same seed and
# drift, more payments a week), so that a week of it holds ~1,500 frauds to enrich with.
TRAFFIC_ROWS_PER_WEEK = 500_000
RATE = 3000.0  # transactions a second: the two shadows keep up on 2 cores
WAIT_FOR_LABELS_S = 12.0


class DemoError(Exception):
    """A demo step failed; the message says which and why."""


def _cli(
    echo: Echo, *args: str, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    shown = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    # Printed so it can be pasted into a shell: arguments with spaces are quoted.
    echo(f"$ {shown + ' ' if shown else ''}shadowline {shlex.join(args)}")
    result = subprocess.run(
        [sys.executable, "-m", "shadowline", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode not in ok:
        raise DemoError(f"'shadowline {' '.join(args)}' failed: {result.stderr.strip()}")
    return result


def _json(
    echo: Echo, *args: str, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None
) -> Any:
    return json.loads(_cli(echo, *args, "--json", ok=ok, env=env).stdout)


def _ensure_production(echo: Echo) -> str:
    status = _json(echo, "models", "status")
    if status["production"]:
        echo(f"  production model already set: {status['production']}")
        return str(status["production"])
    stale = (DEMO_TODAY - timedelta(days=STALE_DAYS)).strftime("%Y-%m-%dT%H:%M:%S")
    run = _json(echo, "retrain", "run", "--as-of", stale, env={"SHADOWLINE_TRAIN_WEEKS": "4"})
    echo(f"  {run['outcome']}: {run['reason']}")
    version = run.get("model_version")
    if run["outcome"] not in {"succeeded", "skipped"} or not version:
        raise DemoError(f"the first training run did not produce a model: {run['reason']}")
    reason = "demo: first production model (no earlier model to shadow against)"
    _cli(echo, "models", "approve", version, "--force", "--reason", reason)
    _cli(echo, "models", "promote", version, "--reason", "demo")
    return str(version)


def _challenger_and_control(echo: Echo, production: str) -> tuple[str, str]:
    today = DEMO_TODAY.strftime("%Y-%m-%dT%H:%M:%S")
    run = _json(echo, "retrain", "run", "--as-of", today, ok=(0, 3))
    echo(f"  {run['outcome']}: {run['reason']}")
    challenger = run.get("model_version")
    if run["outcome"] != "succeeded" or not challenger:
        raise DemoError(f"the challenger did not reach shadow: {run['reason']}")
    control = _json(echo, "retrain", "run", "--control", ok=(0, 3))
    echo(f"  {control['outcome']}: {control['reason']}")
    version = control.get("model_version")
    if control["outcome"] != "succeeded" or not version:  # the gates never stop a control
        raise DemoError(f"the control did not reach shadow: {control['reason']}")
    return str(challenger), str(version)


def _wait_ready(base: str, scorer: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if scorer.poll() is not None:
            raise DemoError(
                f"the scorer exited; its log {log} ends with:\n{log.read_text()[-800:]}"
            )
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:  # noqa: S310
                shadows = json.loads(response.read()).get("shadows", [])
                # Ready, and the sidecar scores with every shadow (they load beside the records).
                if response.status == 200 and all(s.get("loaded", True) for s in shadows):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise DemoError(f"the scorer was not ready within {timeout_s:.0f}s; see {log}")


@contextmanager
def _scorer(echo: Echo, env: dict[str, str]) -> Iterator[str]:
    """A scorer on a free port with ``env``; yields its base URL, stops it afterwards."""
    port = free_port()
    log = Path(STATE_DIR) / "demo-scorer.log"
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    echo(f"$ {shown} shadowline serve --port {port}   (log: {log})")
    with log.open("wb") as out:
        scorer = subprocess.Popen(
            [sys.executable, "-m", "shadowline", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", scorer, log, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        scorer.send_signal(signal.SIGTERM)
        try:
            scorer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            scorer.kill()
            scorer.wait()
        echo("  scorer stopped")


def _metric(base: str, name: str) -> float:
    """The sum of a counter's series on the scorer's /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _live_traffic(
    echo: Echo, base: str, stamp: str
) -> tuple[list[traffic.Transaction], traffic.Sent]:
    start = DEMO_TODAY  # the synthetic stream as it is at the demo's "today"
    items = traffic.transactions(
        start, TRANSACTIONS, FRAUD_SHARE, seed=11, rows_per_week=TRAFFIC_ROWS_PER_WEEK, stamp=stamp
    )
    frauds = sum(item.is_fraud for item in items)
    echo(
        f"  sending {len(items)} transactions ({frauds} fraud: enriched from ~0.4% so that "
        f"minutes of traffic carry enough) through POST /v1/score/batch at ~{RATE:.0f}/s"
    )
    sent = traffic.send(base, items, RATE)
    decisions: dict[str, int] = {}
    for decision in sent.decisions.values():
        decisions[decision] = decisions.get(decision, 0) + 1
    explored = _metric(base, "shadowline_explored_total")
    echo(
        f"  answered: {decisions}; {explored:.0f} would-be blocks explored (answered review "
        "so their outcome can be seen)"
    )
    if sent.failed:
        raise DemoError(f"{sent.failed} transactions were not scored")
    _wait_for_records(base, len(sent.decisions))
    return items, sent


def _wait_for_records(base: str, count: int, timeout_s: float = 60.0) -> None:
    """Until the sidecar has sent a record for every transaction (the analysis reads them)."""
    deadline = time.monotonic() + timeout_s
    while _metric(base, "shadowline_kafka_sent_total") < count:
        if time.monotonic() > deadline:
            raise DemoError(f"the score records of {count} transactions did not all reach Kafka")
        time.sleep(0.5)


def _push_labels(
    echo: Echo, base: str, items: list[traffic.Transaction], sent: traffic.Sent
) -> None:
    labels, hidden = traffic.due_labels(items, sent, seed=5, now=time.time())
    echo(
        f"$ curl -X POST {base}/v1/labels -H 'Authorization: Bearer {LABELS_TOKEN}' "
        "-d '{\"labels\": [...]}'"
    )
    written = 0
    for first in range(0, len(labels), 1000):
        body = json.dumps({"labels": labels[first : first + 1000]}).encode()
        status, answer = traffic.post(f"{base}/v1/labels", body, token=LABELS_TOKEN)
        if status != 200:
            raise DemoError(f"POST /v1/labels answered {status}: {answer}")
        written += int(answer["written"])
    echo(
        f"  {written} fraud labels taken (chargebacks on payments that went ahead); "
        f"{hidden} frauds production blocked stay unlabeled, as in life"
    )


def _evidence(echo: Echo, challenger: str) -> dict[str, Any]:
    shown = _cli(echo, "analyze", challenger, "--record").stdout.rstrip()
    for line in shown.splitlines():
        echo(f"  {line}")
    evidence = _json(echo, "models", "show", challenger)["evidence"]
    if evidence is None or evidence.get("challenger_value") is None:
        raise DemoError("the analysis recorded no labeled evidence")
    return dict(evidence)


def _score_one(echo: Echo, base: str, item: traffic.Transaction, tag: str) -> str:
    body = json.dumps({"transaction_id": f"{item.transaction_id}-{tag}", "features": item.features})
    status, answer = traffic.post(f"{base}/v1/score", body.encode())
    echo(
        f"  POST /v1/score: {status} model={answer.get('model_version')} "
        f"score={answer.get('score', 0):.5f}"
    )
    return str(answer.get("model_version"))


def _wait_for_version(base: str, version: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:  # noqa: S310
            if json.loads(response.read())["production"]["version"] == version:
                return
        time.sleep(0.1)
    raise DemoError(f"the scorer did not swap to {version} within {timeout_s:.0f}s")


def run_demo(echo: Echo) -> None:
    """Run the demo; raises :class:`DemoError` naming the step that failed."""
    started = time.monotonic()
    echo(f"== 1. a production model (trained six weeks before {DEMO_TODAY:%Y-%m-%d})")
    production = _ensure_production(echo)
    echo(
        f"== 2. a challenger (data up to {DEMO_TODAY:%Y-%m-%d}, the demo's fixed 'today') and "
        "a control (production's recipe, another seed)"
    )
    challenger, control = _challenger_and_control(echo, production)
    echo(_cli(echo, "models", "status").stdout.rstrip())
    env = {
        "SHADOWLINE_EXPLORATION_SHARE": EXPLORATION_SHARE,
        "SHADOWLINE_LABELS_TOKEN": LABELS_TOKEN,
    }
    stamp = datetime.now(UTC).strftime("%H%M%S")
    with _scorer(echo, env) as base:
        echo("== 3. live traffic: production answers, the shadows score off the request path")
        items, sent = _live_traffic(echo, base, stamp)
        echo(
            "== 4. fraud labels arrive late (here seconds stand for days): waiting "
            f"{WAIT_FOR_LABELS_S:.0f} s"
        )
        time.sleep(WAIT_FOR_LABELS_S)
        _push_labels(echo, base, items, sent)
        echo("== 5. the evidence")
        evidence = _evidence(echo, challenger)
        echo("== 6. approve (no --force: the policy decides), promote, roll back")
        _cli(
            echo,
            "models",
            "approve",
            challenger,
            "--reason",
            "demo: the evidence clears the policy",
        )
        _cli(echo, "models", "promote", challenger, "--reason", "demo")
        _wait_for_version(base, challenger)
        if _score_one(echo, base, items[0], "after-promotion") != challenger:
            raise DemoError(f"the scorer does not answer with {challenger} after the promotion")
        _cli(echo, "models", "rollback", "--reason", "demo: rolling back is one call")
        _wait_for_version(base, production)
        if _score_one(echo, base, items[0], "after-rollback") != production:
            raise DemoError(f"the scorer does not answer with {production} after the rollback")
    echo(f"== done in {time.monotonic() - started:.0f} s. Look at:")
    echo(f"  the evidence report: {evidence.get('report')}")
    echo(
        "  the review page: shadowline serve, then open http://127.0.0.1:8000/review "
        "(admin token: SHADOWLINE_ADMIN_TOKEN)"
    )
    echo("  the audit log: shadowline models audit")
    echo(f"  the control {control} stays in shadow as the noise floor of the next challenger")
    echo("  the stack is still running; stop it with 'shadowline stack down'")
