// The review page's script.  The page holds no data: everything shown comes from the admin
// API, with the token the operator typed (kept in sessionStorage, so it dies with the tab).
// Every value goes into the page through textContent or an attribute, never as markup.
"use strict";

(function () {
  const TOKEN_KEY = "shadowline.adminToken";
  const ACTOR_KEY = "shadowline.actor";
  const AUDIT_ENTRIES = 5;
  const TERMINAL = new Set(["retired", "rejected"]);

  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // Control characters (a newline, an escape sequence, a bidi override) shown as escapes, so a
  // reason or an actor cannot fake another audit entry or reorder what is shown (the same set
  // as registry.audit.printable for the CLI).
  const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  const NAMED = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

  function printable(text) {
    return String(text).replace(CONTROLS, (c) => {
      const code = c.charCodeAt(0);
      return NAMED[c] || (code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
        : "\\u" + code.toString(16).padStart(4, "0"));
    });
  }

  // ------------------------------------------------------------------ messages

  function say(text, kind, problems) {
    const message = $("message");
    message.textContent = text;
    message.className = kind;
    const list = $("problems");
    list.replaceChildren(...(problems || []).map((p) => el("li", p)));
  }

  // An error from the admin API, {"detail", "errors"}, turned into words for a person.
  function explain(status, body) {
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    const errors = body && Array.isArray(body.errors) ? body.errors.map(String) : [];
    if (status === 401) {
      say("No admin token: enter SHADOWLINE_ADMIN_TOKEN above (401). " + detail, "error");
    } else if (status === 403) {
      say("Wrong admin token: the scorer refused it (403). " + detail, "error");
    } else if (status === 409 && errors.length) {
      say("Refused (409): " + detail, "error", errors);
    } else {
      say("Failed (" + status + "): " + (detail || "no detail"), "error", errors);
    }
  }

  class ApiError extends Error {
    constructor(status, body) {
      super("HTTP " + status);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, payload) {
    const headers = { Authorization: "Bearer " + (sessionStorage.getItem(TOKEN_KEY) || "") };
    const init = { method, headers, cache: "no-store" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (exc) {
      throw new ApiError(0, { detail: "the scorer did not answer (" + exc.message + ")" });
    }
    let body = null;
    try {
      body = await response.json();
    } catch (exc) {
      body = { detail: "the answer was not JSON" };
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // ------------------------------------------------------------------ rendering

  function renderDeployment(listing) {
    const d = listing.deployment;
    $("model-name").textContent = "— model " + listing.name;
    $("production").textContent = d.production || "none";
    $("rollback-target").textContent = d.previous_production || "none";
    $("revision").textContent = String(d.revision);
    const loaded = listing.loaded;
    $("loaded").textContent =
      "production " + (loaded.production || "none") + ", revision " + loaded.revision;
    const shadows = Object.entries(d.shadows);
    $("shadows").replaceChildren(
      ...(shadows.length
        ? shadows.map(([version, rate]) => el("li", version + " at rate " + rate))
        : [el("li", "none")])
    );
    $("rollback").disabled = !d.previous_production;
    $("deployment").hidden = false;
  }

  function row(dl, term, value) {
    dl.append(el("dt", term), el("dd", value));
  }

  function renderEvidence(detail) {
    // The numbers behind the verdict (evidence.js), then what the policy says about them.
    const box = window.ShadowlineEvidence.render(detail, el);
    if (detail.state !== "registered" && detail.state !== "shadow") return box;
    // What approving without force would meet now (the API judges again on the click).
    const policy = el("div", null, "policy");
    if (detail.policy_violations.length) {
      policy.append(el("p", "Approval policy would refuse it now:"));
      const list = el("ul");
      list.append(...detail.policy_violations.map((rule) => el("li", rule)));
      policy.append(list);
    } else {
      policy.append(el("p", "Approval policy is satisfied."));
    }
    box.append(policy);
    return box;
  }

  function renderAudit(detail) {
    const box = el("div", null, "audit");
    box.append(el("h4", "Latest audit entries"));
    const list = el("ol");
    for (const e of detail.audit) {
      const words = [e.at, printable(e.actor), e.action, (e.from_state || "—") + " → " + e.to_state];
      if (e.reason) words.push("reason: " + printable(e.reason));
      if (e.detail) words.push(printable(e.detail));
      list.append(el("li", words.join(" · ")));
    }
    box.append(list);
    return box;
  }

  function button(label, action, handler) {
    const b = el("button", label);
    b.type = "button";
    b.dataset.action = action;
    b.addEventListener("click", handler);
    return b;
  }

  function renderActions(detail) {
    const v = detail.version;
    const box = el("div", null, "actions");
    const reason = el("input");
    reason.type = "text";
    reason.maxLength = 2000;
    reason.className = "reason";
    reason.placeholder = "reason (required to approve)";
    const reasonLabel = el("label", "Reason ");
    reasonLabel.append(reason);
    box.append(reasonLabel);
    const path = "/admin/models/" + encodeURIComponent(v);

    if (detail.state === "registered" || detail.state === "shadow") {
      const force = el("input");
      force.type = "checkbox";
      force.className = "force";
      const forceLabel = el("label", null, "force-label");
      forceLabel.append(force, document.createTextNode(" force past the policy (the reason says why)"));
      box.append(
        forceLabel,
        button("Approve", "approve", () => {
          const text = reason.value.trim();
          if (!text) {
            say(
              force.checked
                ? "Forcing an approval needs a written reason."
                : "Approving needs a written reason.",
              "error"
            );
            return;
          }
          act("POST", path + "/approve", { reason: text, force: force.checked });
        })
      );
    }
    if (detail.state === "registered") {
      const rate = el("input");
      rate.type = "number";
      rate.min = "0.01";
      rate.max = "1";
      rate.step = "0.01";
      rate.value = "0.1";
      rate.className = "rate";
      const rateLabel = el("label", "Shadow rate ");
      rateLabel.append(rate);
      box.append(
        rateLabel,
        button("Shadow", "shadow", () =>
          act("POST", path + "/shadow", { rate: Number(rate.value), reason: reason.value.trim() })
        )
      );
    }
    if (detail.state === "shadow") {
      box.append(
        button("Unshadow", "unshadow", () =>
          act("POST", path + "/unshadow", { reason: reason.value.trim() })
        )
      );
    }
    if (detail.state === "approved") {
      box.append(
        button("Promote", "promote", () =>
          act("POST", path + "/promote", { reason: reason.value.trim() })
        )
      );
    }
    return box;
  }

  function renderVersion(detail) {
    const section = el("section", null, "version state-" + detail.state);
    section.dataset.version = detail.version;
    const title = el("h3");
    title.append(el("span", detail.version, "name"), el("span", detail.state, "state"));
    section.append(title);
    const dl = el("dl");
    row(dl, "Created", detail.created_at || "n/a");
    row(dl, "Registered", detail.registered_at);
    if (detail.shadow_rate !== null) row(dl, "Shadow rate", detail.shadow_rate);
    row(dl, "sha256", detail.sha256);
    section.append(dl, renderEvidence(detail), renderAudit(detail));
    if (!TERMINAL.has(detail.state) && detail.state !== "production") {
      section.append(renderActions(detail));
    }
    return section;
  }

  function clearData() {
    $("deployment").hidden = true;
    $("versions-section").hidden = true;
    $("versions").replaceChildren();
  }

  // ------------------------------------------------------------------ loading and acting

  async function load() {
    const listing = await api("GET", "/admin/models");
    const showAll = $("show-all").checked;
    const wanted = listing.models
      .filter((m) => showAll || !TERMINAL.has(m.state) ||
        m.version === listing.deployment.previous_production)
      .reverse(); // newest first
    const details = await Promise.all(
      wanted.map((m) =>
        api("GET", "/admin/models/" + encodeURIComponent(m.version) + "?audit=" + AUDIT_ENTRIES)
      )
    );
    renderDeployment(listing);
    $("versions").replaceChildren(
      ...(details.length ? details.map(renderVersion) : [el("p", "no versions registered")])
    );
    $("versions-section").hidden = false;
  }

  // Load everything again; the ApiError when that failed (the page keeps the old view,
  // except on 401/403, where nothing stays on screen), else null.
  async function reload() {
    try {
      await load();
      return null;
    } catch (exc) {
      if (!(exc instanceof ApiError)) throw exc;
      if (exc.status === 401 || exc.status === 403) clearData();
      return exc;
    }
  }

  async function refresh() {
    const failed = await reload();
    if (failed) explain(failed.status, failed.body);
    return !failed;
  }

  async function act(method, path, payload) {
    const actor = $("actor").value.trim();
    if (!actor) {
      say("Enter your name (the audit actor) first.", "error");
      return;
    }
    sessionStorage.setItem(ACTOR_KEY, actor);
    say("Working…", "busy");
    let result;
    try {
      result = await api(method, path, Object.assign({ actor }, payload));
    } catch (exc) {
      if (!(exc instanceof ApiError)) throw exc;
      if (exc.status === 401 || exc.status === 403) clearData();
      else await reload(); // someone else may have moved it: show what is true now
      explain(exc.status, exc.body);
      return;
    }
    // The message appears with the new state, so what is on screen always agrees with it.
    const failed = await reload();
    if (failed) {
      const detail = failed.body && failed.body.detail ? failed.body.detail : "HTTP " + failed.status;
      say((result.message || "Done.") + " Reloading failed: " + detail, "error");
    } else {
      say(result.message || "Done.", "ok");
    }
  }

  function start() {
    $("actor").value = sessionStorage.getItem(ACTOR_KEY) || "";
    $("login").addEventListener("submit", async (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value);
      $("token").value = "";
      if (await refresh()) say("Loaded.", "ok");
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      clearData();
      say("Token forgotten.", "ok");
    });
    $("rollback-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("POST", "/admin/rollback", { reason: $("rollback-reason").value.trim() });
    });
    $("show-all").addEventListener("change", refresh);
    if (sessionStorage.getItem(TOKEN_KEY)) refresh();
    else say("Enter the admin token to load the models.", "hint");
  }

  start();
})();
