"""The text of ``docs/benchmarks.md``."""

from __future__ import annotations

from typing import Any

from benchmarks.checks import CONTROL
from benchmarks.render_bounds import (
    change_sections,
    floor_ratios,
    history_section,
    pinned_section,
    ramp_section,
)
from benchmarks.report import NOT_RUN, PROBE_OFF, SERVERS, _fmt, _latency_row, _values, med, total

LAT_HEAD = (
    "| | req/s median (each rep) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | failed "
    "| server CPU µs/request |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _scorer_rows(results: dict[str, Any], keys: list[tuple[str, str]]) -> list[str]:
    lines = [
        "| | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | failed | server CPU µs/request "
        "| shed | shadow errors | records | Kafka sent | Kafka dropped |",
        "|---" * 14 + "|",
    ]
    for label, key in keys:
        lat = [med(results, key, "latency_ms", q) for q in ("p50", "p90", "p99", "p99.9", "max")]
        counts = [
            total(results, key, "scorer", c)
            for c in ("shed", "shadow_errors", "records", "kafka_sent", "kafka_dropped")
        ]
        lines.append(
            f"| {label} | {_fmt(med(results, key, 'rate_achieved'), 0)} | "
            + " | ".join(_fmt(x) for x in lat)
            + f" | {total(results, key, 'failed'):.0f} | "
            + f"{_fmt(med(results, key, 'server_cpu_us_per_request'), 0)} | "
            + " | ".join(f"{c:,.0f}" for c in counts)
            + " |"
        )
    return lines


def markdown(results: dict[str, Any], made: dict[str, str]) -> str:
    m = results["machine"]
    d = results["durations"]
    reps = len(results["reps"])
    ran = results["scorer_status"] == "run"
    names = [n for n in SERVERS if f"max/{n}" in results["reps"][0]]
    out: list[str] = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`benchmarks/run.py`) on {m['date_utc']} in "
        f"{results['elapsed_s']:.0f} s; do not edit by hand, run `make bench` again.",
        "Everything below comes from ONE run on one machine: every server and scenario, "
        f"{reps} repetitions interleaved (the server order rotates each repetition); tables "
        "give medians of the repetitions, with each repetition's value where useful.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPUs (nproc) | {m['nproc']} |",
        f"| CPU model | {m['cpu']} |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| load average at start / end | {m['load_average_at_start']} / "
        f"{m.get('load_average_at_end', '-')} |",
        "| 1-min load average after each repetition | "
        + ", ".join(str(x) for x in results.get("load_per_rep", []))
        + " |",
        f"| code measured | {m.get('code', '-')} |",
        "| packages | " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + " |",
        "",
        "The load generator runs on the same machine as the server under test (and, on a shared "
        "box, beside whatever else runs): numbers are comparable within this run, not across "
        "machines.",
        "",
        "## Commands",
        "",
        "```sh",
        "make bench          # = .venv/bin/python -m benchmarks.run --out docs",
        *results["commands"],
        "```",
        "",
        "Servers (each started by the bench on a free port; the scorer's configuration is its "
        "`SHADOWLINE_*` environment: the stack's Redis and broker, `SHADOWLINE_MODEL_NAME=fraud`"
        ", log level warning, everything else default):",
        "",
        "```sh",
        *[f"{cmd}   # {name}" for name, cmd in results.get("servers", {}).items()],
        "```",
        "",
        "Load (the bench calls the `loadtest` library; the CLI equivalents):",
        "",
        "```sh",
        f"shadowline loadtest max <url> --connections 16 --duration {d['max']:g} "
        "--payloads <server's payloads>   # max throughput",
        f"shadowline loadtest run <url> --rate <rate> --duration {d['fixed']:g} "
        "--connections 256 --preopen <rate x 10 ms, 16 to 256> --timeout 5 "
        "--payloads <server's payloads>   # fixed rate",
        "```",
        "",
        "Payloads: the same 256 rows of 30 floats drawn from the training distribution, as "
        '`{"transaction_id": ..., "features": {...}}` to the scorer\'s `/v1/score` and as the '
        "flat row to the naive `/predict` and the hello-world.",
        "",
        "Each server is a separate process on a free 127.0.0.1 port, on uvicorn with uvloop, "
        "httptools (the scorer: its subclass that sends each response's head with its body in "
        "one write, `service/http_protocol.py`), no access log, one worker:",
        "",
        "| server | what it is |",
        "|---|---|",
        "| scorer | `shadowline serve` (the Shadowline scorer), model registered and promoted "
        "through the registry API against a LocalStack (redis + broker) started by the bench, "
        "Kafka sink on |",
        "| naive | `benchmarks/naive_app.py`: FastAPI, pydantic request model with 30 float "
        "fields, a plain `def` endpoint, onnxruntime (default session options) per request, "
        "pydantic response model |",
        *(
            [
                "| scorer-probe-off | the same scorer as it ships: without the bench's "
                "`SHADOWLINE_LAG_PROBE=true` (the probe costs it about 5% of its pinned "
                "throughput); the throughput and latency bounds judge this one, the scenarios "
                "run the probed one |"
            ]
            if PROBE_OFF in results.get("servers", {})
            else []
        ),
        *(
            [
                "| scorer-kafka-python | the same scorer with "
                "`SHADOWLINE_KAFKA_CLIENT=kafka-python` (the pure-Python producer in its sidecar), "
                "on the same stack |"
            ]
            if "scorer-kafka-python" in results.get("servers", {})
            else []
        ),
        "| floor | `benchmarks/floor_app.py`: the scoring floor: bare ASGI, the scorer's JSON "
        "body parsed with orjson, the model on onnxruntime with one thread, an orjson answer; "
        "nothing else (no validation, no metrics, no Kafka) |",
        "| hello | `benchmarks/hello_asgi.py`: bare ASGI hello-world, the HTTP floor |",
        "",
        f"Model: LightGBM, {results['model']['trees']} trees, 30 numeric inputs, trained on "
        f"{results['model']['train_rows']:,} seeded synthetic rows, exported with onnxmltools "
        "(input `numeric` float32 [N, 30], output `probability` [N, 1]); shadows and promoted "
        "versions are the same trees as distinct artifacts. Load: `loadtest` "
        "(`shadowline loadtest`), open loop for fixed rates (latency counted from each "
        "request's scheduled send time), closed loop with 16 connections for max throughput; "
        "one generator process.",
        "",
        "## Targets",
        "",
        "A ratio target is met when both the ratio of the medians and the median of the "
        "per-repetition ratios meet the bound (the 3-shadow bound: in every repetition too). "
        "A count target must be 0.",
        "",
        "| target | ratio of medians | median of per-rep ratios (each rep) | required | met |",
        "|---|---|---|---|---|",
    ]
    for t in results.get("targets", []):
        if t.get("kind") == "count":
            out.append(_count_row(t))
            continue
        if t["met"] is None:
            out.append(f"| {t['target']} | {NOT_RUN} | {NOT_RUN} | {t['bound']} | {NOT_RUN} |")
            continue
        per = ", ".join(f"{x:.2f}" for x in t["per_rep"])
        note = f"; {t['note']}" if t["note"] else ""
        verdict = "yes" if t["met"] else f"**no**: {_miss(t)}"
        out.append(
            f"| {t['target']} | {t['ratio']:.2f}{note} | {t['paired']:.2f} ({per}) | "
            f"{t['bound']} | {verdict} |"
        )
    if not ran:
        out += ["", f"Scorer rows: **{NOT_RUN}** ({results['scorer_status']})."]
    out += [
        "",
        "## Max throughput (closed loop, 16 connections)",
        "",
        LAT_HEAD,
        *[_latency_row(results, n, f"max/{n}") for n in names],
        *([f"| scorer | {NOT_RUN} ||||||||"] if not ran else []),
        "",
        *floor_ratios(results, "max"),
        f"![max throughput](bench/{made['throughput']})",
        "",
        *pinned_section(results),
        f"## Latency at a fixed rate ({results['rates']['fixed']:.0f} req/s, open loop)",
        "",
        "Half the naive baseline's calibrated maximum, the same rate for every server. Server "
        "CPU is the server's processes' (and their children's) user + system time over the "
        "run, per completed request.",
        "",
        LAT_HEAD,
        *[_latency_row(results, n, f"fixed/{n}") for n in names],
        "",
        *floor_ratios(results, "fixed"),
        f"![fixed rate](bench/{made['fixed']})",
        "",
    ]
    if ran:
        half = results["rates"]["scorer_half"]
        shadow_rows = [(f"{n} shadow{'s' * (n != 1)}", f"shadows{n}") for n in (0, 1, 3)]
        if any(CONTROL in rep for rep in results["reps"]):
            shadow_rows.append(("0 shadows again (control)", CONTROL))
        out += [
            f"## Scorer with shadows ({half:.0f} req/s = half its calibrated maximum)",
            "",
            "Shadows at 100% sampling, every record sent to Kafka. Counters are the scorer's "
            "own Prometheus metrics, summed over the repetitions. The control is a second run "
            "with shadows off in each repetition, after the other three: how far apart the "
            "machine puts two runs of one configuration, minutes apart.",
            "",
            *_scorer_rows(results, shadow_rows),
            "",
            f"![shadows](bench/{made['shadows']})",
            "",
            "## Promotions every 5 s under load",
            "",
            *_scorer_rows(
                results, [("promotions", "promotions"), ("steady (0 shadows)", "shadows0")]
            ),
            "",
            f"![promotions](bench/{made['promotions']})",
            "",
            *change_sections(results),
            *ramp_section(results),
            *history_section(results),
        ]
        if "mixed" in results:
            mx = results["mixed"]
            out += [
                f"## Payload mix ({results['rates']['fixed']:.0f} req/s)",
                "",
                "loadtest's generated payloads in the scorer's shape: valid, invalid (a string "
                "and a missing field: must get 422) and batch (10 transactions), weighted "
                "90/5/5. A failure is a request with no answer or the wrong status class.",
                "",
                "| by kind | by status | failed | p50 ms | p99 ms | max ms |",
                "|---|---|---|---|---|---|",
                f"| {_counts(mx['by_kind'])} | {_counts(mx['by_status'])} | {mx['failed']} | "
                f"{mx['latency_ms']['p50']:.2f} | {mx['latency_ms']['p99']:.2f} | "
                f"{mx['latency_ms']['max']:.2f} |",
                "",
            ]
        if results.get("outage_error"):
            out += ["## Broker outage under load", "", f"Failed: {results['outage_error']}", ""]
        if "outage" in results:
            o = results["outage"]
            ev = ", ".join(f"{e['broker']} at {e['second']} s" for e in o["events"])
            out += [
                "## Broker outage under load (1 shadow)",
                "",
                f"One run, broker {ev}. Requests must all succeed; records wait in the spool "
                "while the broker is away and are sent once it is back (docs/reliability.md).",
                "",
                "| req/s | p50 ms | p99 ms | max ms | failed | Kafka sent | Kafka failed | "
                "Kafka dropped |",
                "|---|---|---|---|---|---|---|---|",
                f"| {o['rate_achieved']:,.0f} | {o['latency_ms']['p50']:.2f} | "
                f"{o['latency_ms']['p99']:.2f} | {o['latency_ms']['max']:.2f} | {o['failed']} | "
                f"{o['scorer']['kafka_sent']:,.0f} | {o['scorer']['kafka_failed']:,.0f} | "
                f"{o['scorer']['kafka_dropped']:,.0f} |",
                "",
                f"![outage](bench/{made['outage']})",
                "",
            ]
    else:
        out += ["## Scorer scenarios (shadows, promotions, broker outage)", "", f"{NOT_RUN}.", ""]
    f = results["floor"]
    cal = results["calibration"]
    out += [
        "## Inference floor (onnxruntime in-process, one row per call)",
        "",
        "| session options | µs per call |",
        "|---|---|",
        f"| one intra-op thread | {f['one_thread_us_per_call']} |",
        f"| defaults | {f['default_options_us_per_call']} |",
        "",
        *_adapter(results.get("adapter")),
        "## Load generator capacity",
        "",
        "What one generator process drives against the bare ASGI hello-world (calibration, "
        "closed loop, 16 connections), and two processes for comparison: when two do no "
        "better, the server (one core) is the limit, not the generator.",
        "",
        "| generator | req/s | p99 ms | generator CPU µs per request | req/s one generator "
        "core can drive |",
        "|---|---|---|---|---|",
        *[
            _generator_row(label, cal[key])
            for label, key in (("1 process", "hello"), ("2 processes", "hello (2 generator procs)"))
        ],
        "",
        "Open-loop runs wake on a timerfd at most every 0.5 ms, so a request may leave up to "
        "~0.5 ms (more when the box is busy) after its scheduled time, and that delay is part "
        "of its latency, as it must be without coordinated omission. Per-run generator lag is "
        "in `bench/results.json` (`generator.lag_ms`).",
        "",
    ]
    lag = [x for n in names for x in _values(results, f"fixed/{n}", ("generator", "lag_ms", "p99"))]
    if lag:
        out += [
            f"Generator lag p99 over the fixed-rate runs: {min(lag):.2f} to {max(lag):.2f} ms.",
            "",
        ]
    if results.get("profiles"):
        out += ["## Profiles (py-spy)", ""]
        for prof in results["profiles"]:
            out += [
                f"### {prof['title']}",
                "",
                f"`{prof['command']}`; {prof['samples']} samples; the heaviest stacks (collapsed, "
                f"line numbers dropped) in `bench/{prof['file']}`.",
                "",
                *([f"py-spy failed: `{prof['error']}`", ""] if prof.get("error") else []),
                "| share of samples | process |",
                "|---|---|",
                *[f"| {share:.1f}% | `{name}` |" for name, share in prof["processes"]],
                "",
                "| share of samples | innermost frame: function (file:line) |",
                "|---|---|",
                *[f"| {share:.1f}% | `{frame}` |" for frame, share in prof["top_self"]],
                "",
                "| share of samples | Shadowline code on the stack (inclusive) |",
                "|---|---|",
                *[f"| {share:.1f}% | `{frame}` |" for frame, share in prof["top_own"]],
                "",
            ]
        out += [
            "Samples include threads waiting in `select`/`Condition.wait` (the Kafka producer's "
            "sender, thread pools): read the innermost frames that are real work.",
            "",
        ]
    return "\n".join(out) + "\n"


def _adapter(a: dict[str, Any] | None) -> list[str]:
    """The input adapter's section (benchmarks/adapter.py): absent from older results."""
    if a is None:
        return []
    verdict = "met" if a["met"] else "MISSED"
    return [
        "## Input adapter (registration of other input layouts, in-process, one row per call)",
        "",
        f"The benchmark model natively packed: {a['native_us']} µs per call. The same trees "
        "exported in another layout, registered (adapter composed) and called with the packed "
        f"inputs (target: within {a['target_ratio']:.0%} of native for the first three: "
        f"{verdict}):",
        "",
        "| exported as | µs per call | vs native | nodes added |",
        "|---|---|---|---|",
        *[
            f"| {name} | {v['us']} | {v['ratio']:.2f}x | {v['nodes_more_than_native']} |"
            for name, v in a["variants"].items()
        ],
        "",
        "The first three compose to the native graph itself (the concatenation is folded into "
        "the packed tensor), so their differences are noise. A graph that reads each column "
        "on its own pays one Gather per column; fed natively (30 inputs, no adapter) the same "
        "graph costs the last row.",
        "",
    ]


def _count_row(t: dict[str, Any]) -> str:
    if t["met"] is None:
        return f"| {t['target']} | {t['note']} | {t['note']} | {t['bound']} | {t['note']} |"
    per = ", ".join(f"{x:,.0f}" for x in t["per_rep"])
    verdict = "yes" if t["met"] else f"**no**: {t['value']:,.0f}"
    return (
        f"| {t['target']} | {t['value']:,.0f}; {t['note']} | ({per}) | {t['bound']} | {verdict} |"
    )


def _generator_row(label: str, run: dict[str, Any]) -> str:
    cpu = run["generator"].get("cpu_us_per_request")
    per_core = f"{1e6 / cpu:,.0f}" if cpu else "-"
    return (
        f"| {label} | {run['rate_achieved']:,.0f} | {run['latency_ms']['p99']:.2f} | "
        f"{cpu if cpu else '-'} | {per_core} |"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}: {n:,}" for key, n in counts.items())


def _shadows(n: int) -> str:
    return f"{n} shadow" if n == 1 else f"{n} shadows"


def _miss(t: dict[str, Any]) -> str:
    ratio, bound = t["judged"], float(t["bound"].split()[1])
    within = ratio >= bound if t["bound"].startswith(">=") else ratio <= bound
    if within:
        return f"{ratio:.2f}x is within {bound}x, but {t['note']}"
    if t["bound"].startswith(">="):
        gap = f"{ratio:.2f}x against {bound}x, {100 * (1 - ratio / bound):.0f}% short"
    else:
        gap = f"{ratio:.2f}x against {bound}x, {100 * (ratio / bound - 1):.0f}% over"
    return gap + (f" ({t['note']})" if t["note"] else "")
