// The dashboard, kept live: /api/v1/live (server-sent events) says when the collector's
// data moved; the page then fetches /api/v1/dashboard with its filters and redraws the
// tables (textContent only: a ticket or a name is never markup) and, when ECharts loaded,
// the heat map. Without this file, or without ECharts, the server-drawn tables stay.
"use strict";
(function () {
  const main = document.getElementById("dash");
  if (!main) return;
  const $ = (id) => document.getElementById(id);
  const query = main.dataset.query;
  let mark = main.dataset.mark;
  let busy = false;
  let again = false;
  let chart = null;

  const pct = (x) => (x == null ? "-" : (x * 100).toFixed(1) + "%");
  const num = (x) => (x == null ? "-" : x.toFixed(1));
  const pad = (n) => String(n).padStart(2, "0");
  const hms = (s) => `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  const since = (t) => (t ? t.slice(5, 16).replace("T", " ") : "-");

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells) {
    const tr = el("tr");
    for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
    return tr;
  }

  function fill(id, items, cells, cols) {
    const body = $(id);
    const rows = items.map((x) => row(cells(x)));
    if (!rows.length) {
      const td = el("td", "无");
      td.colSpan = cols;
      rows.push(row([td]));
    }
    body.replaceChildren(...rows);
  }

  const rates = (r) => [r.ratings, pct(r.satisfied_rate), num(r.index), r.levels["4"]];

  function stateCell(w) {
    const td = el("td");
    td.append(el("span", w.state_zh, "state " + (w.state || "none")));
    return td;
  }

  function flagCell(s) {
    const td = el("td");
    if (s.wait_overlong) td.append(el("span", `请稍候超时 ${s.wait_overlong}`, "flag"));
    if (s.pause_no_badge) td.append(el("span", `无工牌暂停 ${s.pause_no_badge}`, "flag"));
    return td;
  }

  const badCells = (b) => [b.time || "-", b.window, b.staff_no, b.staff_name, b.ticket,
    b.reason || "未选择"];

  function list(id, items, text) {
    const ul = $(id);
    const lis = items.map((x) => el("li", text(x)));
    ul.replaceChildren(...(lis.length ? lis : [el("li", "无")]));
  }

  function heatTable(h) {
    const top = Math.max(1, ...h.counts.flat());
    $("heat").replaceChildren(...h.counts.map((hours, d) => {
      const tr = el("tr");
      tr.append(el("th", h.weekdays[d]));
      for (const n of hours) tr.append(el("td", n || "", "h" + Math.ceil((n * 9) / top)));
      return tr;
    }));
  }

  function heatChart(h) {
    if (!window.echarts) return; // the tables carry the data without it
    const box = $("heat-chart");
    box.hidden = false;
    $("heat-table-box").hidden = true;
    if (!chart) chart = window.echarts.init(box);
    const data = [];
    h.counts.forEach((hours, d) => hours.forEach((n, hr) => data.push([hr, d, n])));
    chart.setOption({
      animation: false,
      tooltip: { formatter: (p) => `${h.weekdays[p.value[1]]} ${p.value[0]}时: ${p.value[2]}` },
      grid: { left: 56, right: 12, top: 8, bottom: 64 },
      xAxis: { type: "category", data: h.hours, splitArea: { show: true } },
      yAxis: { type: "category", data: h.weekdays, inverse: true, splitArea: { show: true } },
      visualMap: { min: 0, max: Math.max(1, ...h.counts.flat()), orient: "horizontal",
        left: "center", bottom: 0, inRange: { color: ["#fdebd6", "#f2923a", "#a33a0f"] } },
      series: [{ type: "heatmap", data: data, label: { show: true,
        formatter: (p) => (p.value[2] ? String(p.value[2]) : "") } }],
    });
  }

  function draw(d) {
    mark = String(d.mark);
    $("now").textContent = d.now;
    $("t-ratings").textContent = d.total.ratings;
    $("t-satisfied").textContent = pct(d.total.satisfied_rate);
    $("t-index").textContent = num(d.total.index);
    $("t-bad").textContent = d.total.levels["4"];
    fill("windows", d.windows, (w) => [w.window, stateCell(w),
      `${w.staff_no || ""} ${w.staff_name || ""}`, since(w.since), ...rates(w)], 8);
    fill("staff", d.staff, (s) => [s.staff_no, s.staff_name || "", ...rates(s),
      hms(s.pause_s), hms(s.wait_s), flagCell(s)], 9);
    fill("bad", d.bad.rows, badCells, 6);
    more(d.bad.next);
    heatTable(d.heat);
    heatChart(d.heat);
    list("alerts", d.alerts, (a) => `${since(a.raised)} ${a.text}`);
    list("silent", d.silent, (s) => `${s.window} ${s.device}: ${s.last_seen || "从未同步"}`);
    drawCases(d.cases);
  }

  // ---- 差评 cases: the open ones, and a dialog where an admin records what was done ----
  function caseRow(k) {
    const state = el("td", k.state_name);
    if (k.overdue) state.append(" ", el("span", "逾期", "flag"));
    const go = el("button", "处理", "case-open");
    go.dataset.case = k.id;
    const act = el("td");
    act.append(go);
    const tr = row([k.time || "-", k.window, `${k.staff_no || ""} ${k.staff_name || ""}`,
      k.ticket || "", k.reason_text || "未选择", state, k.due, act]);
    if (k.overdue) tr.className = "overdue";
    return tr;
  }

  function drawCases(c) {
    const s = c.summary;
    $("case-counts").textContent = `待处理 ${s.open} · 逾期 ${s.overdue} · 申诉中 ${s.appealed}`;
    $("t-overdue").textContent = s.overdue;
    const rows = c.open.cases.map(caseRow);
    if (!rows.length) {
      const td = el("td", "无");
      td.colSpan = 8;
      rows.push(row([td]));
    }
    $("cases").replaceChildren(...rows);
    casesMore(c.open.next);
  }

  function casesMore(next) {
    const b = $("cases-more");
    b.dataset.next = next || "";
    b.hidden = !next;
  }

  $("cases-more").addEventListener("click", async () => {
    const b = $("cases-more");
    const q = `${caseQuery()}&state=open&limit=20&after=${encodeURIComponent(b.dataset.next)}`;
    const r = await fetch("/api/v1/cases?" + q, { credentials: "same-origin" });
    if (!r.ok) return showError(await errorText(r));
    const page = await r.json();
    $("cases").append(...page.cases.map(caseRow));
    casesMore(page.next);
  });

  // the cases of the filter's hall, window and staff, whatever the dates
  function caseQuery() {
    const q = new URLSearchParams(query);
    for (const k of ["day", "from", "to"]) q.delete(k);
    return q.toString();
  }

  const dialog = $("case-dialog");
  const form = $("case-form");
  let caseId = null;

  function showCase(k) {
    caseId = k.id;
    $("case-title").textContent = `差评案件 ${k.id} · ${k.state_name}`;
    $("case-info").textContent = `${k.time || "-"} · 窗口 ${k.window} · ` +
      `${k.staff_no || ""} ${k.staff_name || ""} · 办件编号 ${k.ticket || "-"} · ` +
      `原因 ${k.reason_text || "未选择"} · 回访期限 ${k.due}${k.overdue ? " (逾期)" : ""}`;
    $("case-log").replaceChildren(...k.actions.map((a) => el("li",
      `${since(a.at)} ${a.action_name}${a.decision ? " " + a.decision : ""} (${a.by}): ${a.text}`)));
  }

  function caseError(text) {
    const e = $("case-error");
    e.textContent = text || "";
    e.hidden = !text;
  }

  $("cases").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button.case-open");
    if (!b) return;
    const r = await fetch("/api/v1/cases/" + encodeURIComponent(b.dataset.case),
      { credentials: "same-origin" });
    if (!r.ok) return showError(await errorText(r));
    showCase(await r.json());
    caseError("");
    form.reset();
    $("case-decision").hidden = true;
    dialog.showModal();
  });

  form.elements.action.addEventListener("change", () => {
    $("case-decision").hidden = form.elements.action.value !== "decide";
  });
  $("case-close").addEventListener("click", () => dialog.close());

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { action: form.elements.action.value, text: form.elements.text.value };
    if (body.action === "decide") body.decision = form.elements.decision.value;
    const r = await fetch("/api/v1/cases/" + encodeURIComponent(caseId), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!r.ok) {
      // a viewer's 403 and the API's refusals are one line of text or {"error"}
      const text = (r.headers.get("content-type") || "").startsWith("application/json")
        ? await errorText(r) : await r.text();
      return caseError(text);
    }
    showCase(await r.json());
    caseError("");
    form.elements.text.value = "";
    refresh(); // the live stream would say so too
  });

  function showError(text) {
    const e = $("error");
    e.textContent = text || "";
    e.hidden = !text;
  }

  async function errorText(r) {
    try {
      return (await r.json()).error;
    } catch (_) {
      return `${r.status} ${r.statusText}`;
    }
  }

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const r = await fetch("/api/v1/dashboard?" + query, { credentials: "same-origin" });
      if (r.ok) {
        draw(await r.json());
        showError("");
        main.dataset.drawn = mark; // the browser tests wait for this
      } else {
        showError(await errorText(r));
      }
    } catch (e) {
      showError("连接中断，正在重试 (" + e + ")");
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function more(next) {
    const b = $("bad-more");
    b.dataset.next = next || "";
    b.hidden = !next;
  }

  $("bad-more").addEventListener("click", async () => {
    const b = $("bad-more");
    const q = `${query}&level=4&limit=20&after=${encodeURIComponent(b.dataset.next)}`;
    const r = await fetch("/api/v1/bad?" + q, { credentials: "same-origin" });
    if (!r.ok) return showError(await errorText(r));
    const page = await r.json();
    $("bad").append(...page.rows.map((x) => row(badCells(x))));
    more(page.next);
  });

  let es = null;

  function connect() {
    const live = $("live");
    es = new EventSource("/api/v1/live");
    es.onopen = () => {
      live.textContent = "实时";
      live.classList.remove("off");
    };
    es.addEventListener("mark", (e) => {
      if (e.data !== mark) refresh(); // moved between the page and the stream
    });
    es.addEventListener("change", () => refresh());
    es.addEventListener("revoked", () => {
      // the user was revoked while the page was open: the page's data goes with them
      es.close();
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    });
    es.onerror = () => {
      live.textContent = "重新连接中";
      live.classList.add("off");
      // a stream that ended reconnects by itself; a refused one (busy, logged out) not
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 10000);
    };
  }

  // a page left (or kept in the back-forward cache) gives its stream back at once: the
  // server counts streams per address, and a kept page would hold one for its whole life
  window.addEventListener("pagehide", () => {
    if (es) es.close();
  });
  window.addEventListener("pageshow", (e) => {
    if (e.persisted) {
      connect();
      refresh();
    }
  });

  window.pingjiaDashboard = { refresh: refresh, query: query, showError: showError };
  if (window.echarts) heatChartFromTable();
  connect();

  // the first chart from the server's table, before any event arrives
  function heatChartFromTable() {
    const weekdays = [];
    const counts = [];
    for (const tr of $("heat").rows) {
      weekdays.push(tr.cells[0].textContent);
      counts.push([...tr.cells].slice(1).map((td) => Number(td.textContent) || 0));
    }
    heatChart({ weekdays: weekdays, hours: [...Array(24).keys()], counts: counts });
  }
})();
