// The numbers behind a challenger's verdict, as the review page shows them: one block per
// recorded evidence (live shadow, replay of archived traffic) with the labeled metrics and
// their 95% intervals, the decision bound, label maturity, the label-free signals, the
// control and the report.  It reads the admin API's GET /admin/models/{version} answer
// (registry/evidence.py describes every field) and builds nodes with the page's own `el`
// (text only, never markup).
"use strict";

window.ShadowlineEvidence = (function () {
  const DECISIONS = ["allow", "review", "block"];
  const NAMES = {
    fraud_caught_at_block_rate: "fraud caught at production's block rate",
    money_saved_at_block_rate: "money saved at production's block rate",
    recall: "recall",
    precision: "precision",
    auc: "AUC",
    false_decline_rate: "false-decline rate",
  };

  // ------------------------------------------------------------------ numbers as text

  const isNumber = (value) => typeof value === "number" && isFinite(value);

  // 3 decimals for rates and shares; whole numbers with separators for money and counts.
  function num(value) {
    if (!isNumber(value)) return "n/a";
    if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en-US");
    return value.toFixed(3);
  }

  function signed(value) {
    const text = num(value);
    return isNumber(value) && !text.startsWith("-") ? "+" + text : text;
  }

  // "+0.012 [-0.004, +0.028]": a value and its interval.
  function withInterval(value, ci, sign) {
    const text = sign ? signed(value) : num(value);
    if (!ci) return text;
    const show = sign ? signed : num;
    return text + " [" + show(ci.low) + ", " + show(ci.high) + "]";
  }

  function pct(value, digits) {
    return isNumber(value) ? (value * 100).toFixed(digits === undefined ? 1 : digits) + "%" : "n/a";
  }

  function count(value) {
    return isNumber(value) ? value.toLocaleString("en-US") : "n/a";
  }

  function duration(seconds) {
    if (!isNumber(seconds)) return "n/a";
    if (seconds >= 86400) return (seconds / 86400).toFixed(1) + " days";
    if (seconds >= 3600) return (seconds / 3600).toFixed(1) + " hours";
    return Math.round(seconds) + " s";
  }

  function metricName(name) {
    return NAMES[name] || String(name).replace(/_/g, " ");
  }

  // Whether an interval of a difference says "better" or "worse" (for a colour).
  function direction(ci, higherIsBetter) {
    if (!ci) return "";
    if (ci.low > 0) return higherIsBetter ? "better" : "worse";
    if (ci.high < 0) return higherIsBetter ? "worse" : "better";
    return "";
  }

  // ------------------------------------------------------------------ building blocks

  function make(el) {
    function table(headers, rows, className) {
      const node = el("table", null, className);
      const head = el("tr");
      head.append(...headers.map((h) => el("th", h)));
      const thead = el("thead");
      thead.append(head);
      const tbody = el("tbody");
      for (const cells of rows) {
        const tr = el("tr", null, cells.className || "");
        for (const cell of cells) {
          tr.append(cell instanceof Node ? cell : el("td", cell));
        }
        tbody.append(tr);
      }
      node.append(thead, tbody);
      return node;
    }

    function pairs(className, items) {
      const dl = el("dl", null, className);
      for (const [term, value] of items) {
        if (value !== undefined && value !== null) dl.append(el("dt", term), el("dd", value));
      }
      return dl;
    }

    return { table, pairs };
  }

  // ------------------------------------------------------------------ the sections

  function metricsTable(ev, version, parts, el) {
    const primary = {
      name: ev.metric,
      production: ev.production_value,
      challenger: ev.challenger_value,
      difference: ev.difference,
      production_ci: null,
      challenger_ci: null,
      difference_ci: ev.difference_ci,
      higher_is_better: ev.higher_is_better,
      frauds: ev.matured_frauds,
      transactions: ev.matured_records,
    };
    const metrics = ev.metrics && ev.metrics.length ? ev.metrics : [primary];
    const rows = metrics.map((m) => {
      const judged = m.name === ev.metric;
      const difference = el(
        "td",
        withInterval(m.difference, m.difference_ci, true),
        "difference " + direction(m.difference_ci, m.higher_is_better)
      );
      const row = [
        metricName(m.name) + (judged ? " (judged)" : ""),
        withInterval(m.production, m.production_ci, false),
        withInterval(m.challenger, m.challenger_ci, false),
        difference,
        count(m.frauds),
        count(m.transactions),
      ];
      row.className = judged ? "primary" : "";
      return row;
    });
    const headers = [
      "labeled metric (matured)",
      "production " + (ev.production_version || "none"),
      "challenger " + version,
      "difference (95% interval)",
      "frauds",
      "transactions",
    ];
    return parts.table(headers, rows, "metrics");
  }

  function boundLine(ev, policy, el) {
    if (!isNumber(ev.decision_low)) {
      return el("p", "Decision bound: none (no interval for the difference).", "bound");
    }
    const level = isNumber(ev.decision_level) ? pct(ev.decision_level, 2) : "n/a";
    let text =
      "Decision bound: the difference is at least " + signed(ev.decision_low) +
      " at " + level + " confidence after " + ev.looks + " look(s)";
    if (policy) text += "; approval needs it above " + signed(-policy.tolerance);
    return el("p", text + ".", "bound");
  }

  function maturityPairs(ev, policy, parts) {
    const m = ev.maturity;
    if (!m) return parts.pairs("maturity", [["Label maturity", "unknown"]]);
    const from = m.window_from === "curve"
      ? "the delay by which " + pct(m.quantile, 0) + " of fraud labels arrived"
      : "the setting";
    const needs = policy ? " (policy needs " + pct(policy.min_label_maturity, 0) + ")" : "";
    return parts.pairs("maturity", [
      ["Maturity window", duration(m.window_s) + ", from " + from],
      ["Labels expected in (matured)", pct(m.expected_share_matured) + needs],
      ["Labels expected in (all compared)", pct(m.expected_share_all)],
      ["Fraud label delays seen", count(m.delays_seen)],
    ]);
  }

  function latency(q) {
    return q ? [q.p50, q.p95, q.p99].map((v) => v.toFixed(1)).join(" / ") + " ms" : "n/a";
  }

  function signalPairs(lf, parts) {
    return parts.pairs("signals", [
      ["Transactions compared", count(lf.transactions) + " (challenger sampled on " + count(lf.sampled) + ")"],
      ["Decision agreement", pct(lf.agreement)],
      ["Score rank correlation", num(lf.rank_correlation)],
      ["PSI / KS", num(lf.psi) + " / " + num(lf.ks)],
      [
        "Challenger error / timeout / busy / shed",
        [lf.error_rate, lf.timeout_rate, lf.busy_rate, lf.shed_rate].map((r) => pct(r, 2)).join(" / "),
      ],
      ["Challenger latency p50 / p95 / p99", latency(lf.challenger_latency_ms)],
      ["Production latency p50 / p95 / p99", latency(lf.production_latency_ms)],
    ]);
  }

  function flipTable(lf, parts) {
    const cell = {};
    for (const f of lf.flips) cell[f.production + ">" + f.challenger] = f;
    const rows = DECISIONS.map((p) => [
      "production " + p,
      ...DECISIONS.map((c) => {
        const f = cell[p + ">" + c];
        if (!f) return "0";
        return count(f.count) + (isNumber(f.amount) ? " · " + num(f.amount) : "");
      }),
    ]);
    const headers = ["", ...DECISIONS.map((c) => "challenger " + c)];
    return parts.table(headers, rows, "flips");
  }

  function controlBlock(control, el, parts) {
    const box = el("div", null, "control");
    box.append(el("h5", "Control " + control.version + " (noise floor: production's recipe, another seed)"));
    box.append(
      parts.table(
        ["comparison", "difference (95% interval)"],
        [
          ["control minus production", withInterval(control.control_difference, control.control_difference_ci, true)],
          ["challenger minus control", withInterval(control.versus_control, control.versus_control_ci, true)],
        ],
        "control-table"
      ),
      el("p", "On " + count(control.transactions) + " transactions, " + count(control.frauds) + " frauds."),
      el("p", control.verdict || (control.beyond_noise ? "Beyond the noise floor." : "Within the noise floor."), "verdict")
    );
    return box;
  }

  function reportLine(report, el) {
    const p = el("p", "Full report: ", "report");
    // Only web addresses become links; a path names a file on the analysis host.
    if (/^https?:\/\//i.test(report) || report.startsWith("/")) {
      const a = el("a", report);
      a.href = report;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      p.append(a);
    } else {
      p.append(el("code", report), document.createTextNode(" (on the analysis host)"));
    }
    return p;
  }

  // One recorded evidence: everything the verdict rests on.
  function renderOne(ev, detail, el) {
    const parts = make(el);
    const policy = detail.policy;
    const box = el("div", null, "evidence-source source-" + ev.source);
    box.dataset.source = ev.source;
    box.append(el("h5", ev.source === "replay" ? "Replay of archived traffic" : "Live shadow"));
    const needs = policy ? " (policy needs " + policy.min_matured_frauds + ")" : "";
    const explored = ev.explored_records
      ? "; " + count(ev.explored_records) + " explored would-be blocks (" + ev.estimator + " estimate)"
      : "";
    box.append(
      parts.pairs("summary", [
        ["Against production", ev.production_version || "none (first model)"],
        ["Matured frauds", count(ev.matured_frauds) + needs],
        [
          "Transactions",
          count(ev.shadow_records) + " compared, " + count(ev.matured_records) + " matured, " +
            count(ev.labeled_records) + " labeled" + explored,
        ],
        [
          "Window",
          ev.window_start || ev.window_end
            ? (ev.window_start || "?") + " to " + (ev.window_end || "?")
            : null,
        ],
        ["Recorded at", ev.recorded_at || "n/a"],
      ]),
      metricsTable(ev, detail.version, parts, el),
      boundLine(ev, policy, el),
      maturityPairs(ev, policy, parts)
    );
    if (ev.label_free) {
      box.append(el("h5", "Label-free signals"), signalPairs(ev.label_free, parts));
      if (ev.label_free.flips.length) {
        box.append(el("h5", "Decision flips (count · money)"), flipTable(ev.label_free, parts));
      }
    }
    if (ev.control) box.append(controlBlock(ev.control, el, parts));
    if (ev.report) box.append(reportLine(ev.report, el));
    return box;
  }

  // Every evidence recorded for a version, or a hint how to record one.
  function render(detail, el) {
    const box = el("div", null, "evidence");
    box.append(el("h4", "Shadow evidence"));
    const recorded = [detail.evidence, detail.replay_evidence].filter((ev) => ev);
    if (!recorded.length) {
      box.append(el("p", "none recorded (shadowline analyze " + detail.version + " --record)"));
      return box;
    }
    if (recorded.length > 1) {
      box.append(
        el("p", "The policy judges the evidence with more matured frauds.", "hint")
      );
    }
    for (const ev of recorded) box.append(renderOne(ev, detail, el));
    return box;
  }

  return { render };
})();
