"""The A/B tool's parsing and arithmetic on made-up runs (no servers, no timing)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks.ab import FLOOR, main, measure, pair_ratios, parse_variants, summary
from benchmarks.servers import BenchError


def _run(rps: float, p99: float, cpu: float, loop: float) -> dict[str, Any]:
    return {"rps": rps, "p99_ms": p99, "cpu_us": cpu, "loop_us": loop, "children_us": 0.0}


def test_variants_are_revisions_with_their_settings() -> None:
    variants = parse_variants(
        ["base=HEAD~1", "new=."], ["new:SHADOWLINE_SHADOW_BATCH_MAX=32", "new:X=a=b"]
    )
    assert [(v.name, v.revision) for v in variants] == [("base", "HEAD~1"), ("new", ".")]
    assert variants[0].env == {}
    assert variants[1].env == {"SHADOWLINE_SHADOW_BATCH_MAX": "32", "X": "a=b"}


@pytest.mark.parametrize(
    ("specs", "envs", "named"),
    [
        (["base"], [], "'base': expected NAME=REVISION"),
        (["=HEAD", "b=."], [], "'=HEAD': expected NAME=REVISION"),
        (["a=.", "a=HEAD"], [], "the name 'a' is taken"),
        (["floor=.", "a=."], [], "the name 'floor' is taken"),
        (["a=.", "b=."], ["c:K=V"], "no variant named 'c'"),
        (["a=.", "b=."], ["a:K"], "'a:K': expected NAME:KEY=VALUE"),
        (["a=."], [], "at least two variants"),
    ],
)
def test_a_malformed_variant_is_named(specs: list[str], envs: list[str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_variants(specs, envs)


def test_the_command_line_refuses_bad_variants_before_starting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--variant", "only=."])
    assert exited.value.code == 2
    assert "at least two variants" in capsys.readouterr().err


def test_each_variant_is_compared_with_the_base_and_the_floor_of_its_own_pair() -> None:
    pair = {
        FLOOR: _run(10_000, 2.0, 50.0, 50.0),
        "base": _run(6_000, 4.0, 100.0, 90.0),
        "new": _run(6_600, 3.0, 90.0, 80.0),
    }
    ratios = pair_ratios(pair, "base")
    assert set(ratios) == {"base", "new"}
    assert ratios["base"]["rps vs base"] == 1.0
    assert ratios["new"]["rps vs base"] == pytest.approx(1.1)
    assert ratios["new"]["p99 vs base"] == pytest.approx(0.75)
    assert ratios["new"]["cpu vs base"] == pytest.approx(0.9)
    assert ratios["new"]["rps vs floor"] == pytest.approx(0.66)
    assert ratios["new"]["p99 vs floor"] == pytest.approx(1.5)


def test_the_table_shows_medians_and_every_pair() -> None:
    pairs = [
        {
            FLOOR: _run(10_000, 2.0, 50.0, 50.0),
            "base": _run(6_000, 4.0, 100.0, 90.0),
            "new": _run(new_rps, 3.0, 90.0, 80.0),
        }
        for new_rps in (6_600, 5_400, 6_000)
    ]
    table = summary(pairs, "base").splitlines()
    assert table[0].startswith("| server | req/s | p99 ms |")
    new = next(line for line in table if line.startswith("| new |"))
    assert "| 6,000 |" in new  # the median of 6,600, 5,400 and 6,000
    assert "| 1.10, 0.90, 1.00 |" in new  # each pair against the base, in order
    assert new.endswith("| 0.60 | 1.50 |")  # medians against the floor


class _Silent:
    """A bench context whose every load completes nothing (a variant that broke under load)."""

    def __init__(self) -> None:
        self.servers = {"new": SimpleNamespace(log="/work/.shadowline/ab/new.log")}

    def pinned_load(self, name: str, **_: Any) -> dict[str, Any]:
        return {"completed": 0, "server_cpu_us_per_request": None}


def test_a_variant_that_answers_nothing_is_named_with_its_log() -> None:
    with pytest.raises(BenchError, match=r"new: no request completed in 6 s .*new\.log"):
        measure(_Silent(), "new", 6.0)  # type: ignore[arg-type]
