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
    list("alerts", d.alerts, (a) => `${a.window} ${a.device}: ${a.text}`);
    list("silent", d.silent, (s) => `${s.window} ${s.device}: ${s.last_seen || "从未同步"}`);
    if (window.pingjiaCases) window.pingjiaCases.draw(d);
  }

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

  function connect() {
    const live = $("live");
    const es = new EventSource("/api/v1/live");
    es.onopen = () => {
      live.textContent = "实时";
      live.classList.remove("off");
    };
    es.addEventListener("mark", (e) => {
      if (e.data !== mark) refresh(); // moved between the page and the stream
    });
    es.addEventListener("change", () => refresh());
    es.onerror = () => {
      live.textContent = "重新连接中";
      live.classList.add("off");
      // a stream that ended reconnects by itself; a refused one (busy, logged out) not
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 10000);
    };
  }

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
