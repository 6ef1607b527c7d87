// Alerts (platform administrators): what fires now on this host, the rules (create, edit,
// delete, with the API's validation shown in the form), and the history.

import * as api from "../api.js";
import {badge, h, replace, table, time, toast} from "../dom.js";

/** The condition kinds and their fields: [name, label, input attributes]. */
const KINDS = {
  error_rate_above: {label: "Error rate above", fields: [
    ["service", "Service", {required: true}], ["instance", "Instance (optional)", {}],
    ["threshold", "Error rate, 0 to 1", {type: "number", step: "any", required: true}],
    ["window_secs", "Window (s, up to 300)", {type: "number", value: 60, required: true}],
    ["min_requests", "Fewest requests", {type: "number", value: 1}]]},
  latency_above: {label: "Latency above", fields: [
    ["service", "Service", {required: true}], ["instance", "Instance (optional)", {}],
    ["quantile", "Percentile", {options: ["p50", "p95", "p99"]}],
    ["threshold_ms", "Latency (ms)", {type: "number", required: true}],
    ["window_secs", "Window (s, up to 300)", {type: "number", value: 60, required: true}]]},
  request_rate_below: {label: "Request rate below", fields: [
    ["service", "Service", {required: true}], ["instance", "Instance (optional)", {}],
    ["per_second", "Requests per second", {type: "number", step: "any", required: true}],
    ["window_secs", "Window (s, up to 300)", {type: "number", value: 60, required: true}]]},
  request_rate_above: {label: "Request rate above", fields: [
    ["service", "Service", {required: true}], ["instance", "Instance (optional)", {}],
    ["per_second", "Requests per second", {type: "number", step: "any", required: true}],
    ["window_secs", "Window (s, up to 300)", {type: "number", value: 60, required: true}]]},
  instance_status: {label: "Instance status", fields: [
    ["service", "Service", {required: true}], ["instance", "Instance (optional)", {}],
    ["at_least", "Status at least", {options: ["critical", "warning"]}]]},
  breaker_open: {label: "Breaker open", fields: [
    ["service", "Service", {required: true}], ["instance", "Instance (optional)", {}]]},
  workflow_backlog_above: {label: "Workflow backlog above", fields: [
    ["tenant", "Tenant id (optional)", {}],
    ["oldest_ready_secs", "Oldest due node waited (s)", {type: "number", required: true}]]},
};
const NUMBERS = new Set(["threshold", "window_secs", "min_requests", "threshold_ms", "per_second", "oldest_ready_secs"]);

export async function render(main, ctx) {
  const firing = h("div", {id: "alerts-now"});
  const rules = h("div", {id: "rules"});
  const history = h("div", {id: "history"});
  const formHolder = h("div", {});
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Alerts"),
      h("span", {class: "hint"}, "Rules are evaluated every second by each host against the traffic it sees.")),
    h("h2", {}, "Now"), firing,
    h("div", {class: "page-head"}, h("h2", {}, "Rules"),
      h("button", {type: "button", class: "primary", id: "new-rule", onclick: () => openForm(null)}, "New rule")),
    formHolder, rules,
    h("h2", {}, "History"), history));

  const loadNow = async () => {
    const list = await api.get("/api/monitoring/alerts");
    replace(firing, table([
      ["Rule", (a) => a.name],
      ["Severity", (a) => badge(a.severity === "critical" ? "critical" : a.severity === "warning" ? "warning" : "info", a.severity)],
      ["State", (a) => badge(a.state === "firing" ? "critical" : a.state === "pending" ? "warning" : "passing", a.state)],
      ["Since", (a) => time(a.since)],
      ["Value", (a) => (Number.isFinite(a.value) ? a.value.toPrecision(3) : "—")],
    ], list.items, {caption: "Every rule's alert on this host, firing first", empty: "No rules yet.",
      rowAttrs: (a) => ({"data-alert": a.rule_id, "data-state": a.state})}));
  };
  const loadRules = async () => {
    const list = await api.get("/api/monitoring/alerts/rules");
    replace(rules, table([
      ["Id", (r) => h("span", {class: "mono"}, r.rule.id)],
      ["Name", (r) => r.rule.name],
      ["Severity", (r) => r.rule.severity],
      ["Condition", (r) => describe(r.rule.condition)],
      ["For", (r) => `${r.rule.for_secs || 0} s`],
      ["Changed", (r) => time(r.updated_at)],
      ["", (r) => h("span", {class: "actions"},
        h("button", {type: "button", onclick: () => openForm(r.rule)}, "Edit"),
        h("button", {type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Delete rule ${r.rule.id}?`)) return;
          try { await api.del(`/api/monitoring/alerts/rules/${encodeURIComponent(r.rule.id)}`); toast(`Rule ${r.rule.id} deleted`); await refresh(); } catch (e) { toast(e.message, "error"); }
        }}, "Delete"))],
    ], list.items, {caption: "Rules", empty: "No rules.", rowAttrs: (r) => ({"data-rule": r.rule.id})}));
  };
  const loadHistory = async (until) => {
    const page = await api.get(`/api/monitoring/alerts/history${api.qs({until, limit: 50})}`);
    const more = page.items.length === 50 ? h("button", {type: "button", onclick: () => loadHistory(page.items[page.items.length - 1].at)}, "Older events") : null;
    replace(history, table([
      ["At", (e) => time(e.at)],
      ["Rule", (e) => e.rule_name],
      ["State", (e) => badge(e.state === "firing" ? "critical" : "passing", e.state)],
      ["Summary", (e) => e.summary],
    ], page.items, {caption: until ? "Older events" : "Newest first", empty: "No alert has fired yet."}), more);
  };
  const refresh = () => Promise.all([loadNow(), loadRules(), loadHistory()]);

  function openForm(rule) {
    replace(formHolder, ruleForm(rule, async () => { replace(formHolder); await refresh(); }, () => replace(formHolder)));
    formHolder.querySelector("input")?.focus();
  }

  await refresh();
  // Alerts change with traffic: read them again every few seconds while the page is open.
  const timer = setInterval(() => { loadNow().catch(() => {}); }, 3000);
  return () => clearInterval(timer);
}

function describe(c) {
  const where = c.service ? `${c.service}${c.instance ? `/${c.instance}` : ""}` : c.tenant ? `tenant ${c.tenant}` : "any";
  switch (c.kind) {
    case "error_rate_above": return `${where}: error rate > ${c.threshold} over ${c.window_secs} s (≥ ${c.min_requests ?? 1} requests)`;
    case "latency_above": return `${where}: ${c.quantile} > ${c.threshold_ms} ms over ${c.window_secs} s`;
    case "request_rate_below": return `${where}: < ${c.per_second} req/s over ${c.window_secs} s`;
    case "request_rate_above": return `${where}: > ${c.per_second} req/s over ${c.window_secs} s`;
    case "instance_status": return `${where}: status ${c.at_least} or worse`;
    case "breaker_open": return `${where}: breaker open`;
    case "workflow_backlog_above": return `${where}: a due node waited > ${c.oldest_ready_secs} s`;
    default: return JSON.stringify(c);
  }
}

function ruleForm(rule, done, cancel) {
  const editing = Boolean(rule);
  const error = h("p", {class: "form-error", id: "rule-error", role: "alert", hidden: true});
  const kind = h("select", {name: "kind", id: "rule-kind"}, Object.entries(KINDS).map(([k, v]) =>
    h("option", {value: k, selected: rule?.condition?.kind === k}, v.label)));
  const conditionFields = h("div", {class: "form-grid"});
  const drawFields = () => {
    replace(conditionFields, KINDS[kind.value].fields.map(([name, label, attrs]) => {
      const current = rule?.condition?.kind === kind.value ? rule.condition[name] : undefined;
      const input = attrs.options
        ? h("select", {name}, attrs.options.map((o) => h("option", {value: o, selected: current === o}, o)))
        : h("input", {name, type: attrs.type || "text", step: attrs.step, required: attrs.required, value: current ?? attrs.value ?? ""});
      return h("label", {}, label, input);
    }));
  };
  kind.addEventListener("change", drawFields);
  drawFields();
  const form = h("form", {class: "stack card", id: "rule-form", novalidate: true, "aria-describedby": "rule-error"},
    h("h2", {}, editing ? `Edit rule ${rule.id}` : "New rule"),
    h("div", {class: "form-grid"},
      h("label", {}, "Id", h("input", {name: "id", required: true, value: rule?.id ?? "", readonly: editing, pattern: "[a-z0-9][a-z0-9._-]*"})),
      h("label", {}, "Name", h("input", {name: "name", required: true, value: rule?.name ?? ""})),
      h("label", {}, "Severity", h("select", {name: "severity"}, ["info", "warning", "critical"].map((s) =>
        h("option", {value: s, selected: (rule?.severity ?? "warning") === s}, s)))),
      h("label", {}, "Firing after (s)", h("input", {name: "for_secs", type: "number", value: rule?.for_secs ?? 0})),
      h("label", {}, "Condition", kind)),
    conditionFields, error,
    h("div", {class: "actions"},
      h("button", {type: "submit", class: "primary"}, editing ? "Save rule" : "Create rule"),
      h("button", {type: "button", onclick: cancel}, "Cancel")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const data = new FormData(form);
    const fail = (message, field) => {
      error.hidden = false;
      error.textContent = message;
      if (field) form.querySelector(`[name="${field}"]`)?.setAttribute("aria-invalid", "true");
    };
    // Empty required fields are caught here; everything else the API checks and explains.
    for (const el of form.querySelectorAll("[required]")) {
      if (!String(el.value).trim()) return fail(`${el.closest("label").firstChild.textContent} is required`, el.name);
    }
    const condition = {kind: data.get("kind")};
    for (const [name] of KINDS[condition.kind].fields) {
      const v = String(data.get(name) ?? "").trim();
      if (v === "") continue;
      if (NUMBERS.has(name)) {
        const n = Number(v);
        if (!Number.isFinite(n)) return fail(`${name} must be a number`, name);
        condition[name] = n;
      } else {
        condition[name] = v;
      }
    }
    const body = {id: String(data.get("id")).trim(), name: String(data.get("name")).trim(), severity: data.get("severity"),
      for_secs: Number(data.get("for_secs") || 0), labels: rule?.labels ?? {}, condition};
    try {
      if (editing) await api.put(`/api/monitoring/alerts/rules/${encodeURIComponent(rule.id)}`, body);
      else await api.post("/api/monitoring/alerts/rules", body);
      toast(`Rule ${body.id} ${editing ? "saved" : "created"}`);
      await done();
    } catch (e) {
      // Point at the field the API names, when it names one.
      const field = /threshold/.test(e.message) ? (condition.threshold !== undefined ? "threshold" : condition.threshold_ms !== undefined ? "threshold_ms" : "per_second")
        : /window/.test(e.message) ? "window_secs" : /id\b/.test(e.message) ? "id" : null;
      fail(e.message, field);
    }
  });
  return form;
}
