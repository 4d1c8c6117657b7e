// The resilience report page: built from the JSON report embedded in the page (id "report-data") alone.
// Vanilla JS and uPlot (inlined beside this file): no network, no build step.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  let charts = [];
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k === "onclick") node.onclick = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "–" : String(c)));
    return node;
  };
  const fmt = (v, digits) => (v == null ? "–" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits ?? 3)) : String(v));
  const COLORS = { REDIS: "#c0392b", HTTP: "#2471a3" };
  const colorOf = (t, i) => COLORS[t] || ["#7d3c98", "#117864", "#b9770e"][i % 3];

  const draw = (report) => {
  for (const sel of ["#facts", "#totals", "#notes", "#charts", "#slo tbody", "#faults tbody", "#integrity tbody"]) $(sel).replaceChildren();
  charts.forEach((c) => c.destroy());
  charts = [];
  // ---- header and SLOs ---------------------------------------------------------------------
  const pass = report.verdict === "pass";
  const running = report.verdict === "running";
  $("#verdict").textContent = running ? "RUNNING (live, every 2 s)" : `${report.verdict.toUpperCase()} (exit code ${report.exit_code})`;
  $("#verdict").className = "verdict " + (running ? "running" : pass ? "pass" : "fail");
  const s = report.summary;
  $("#facts").append(
    el("span", {}, `target ${report.target}`), el("span", {}, `profile ${report.profile}`),
    el("span", {}, `run ${report.run_id}`), el("span", {}, `${fmt(report.duration_s, 1)} s`),
    el("span", {}, `${report.mode}`), el("span", {}, `started ${new Date(report.started_at * 1000).toISOString().replace("T", " ").slice(0, 19)} UTC`),
  );
  $("#totals").append(
    el("div", { class: "tile" }, el("b", {}, fmt(s.requests)), "requests"),
    el("div", { class: "tile" }, el("b", {}, fmt(s.failures)), "failures"),
    el("div", { class: "tile" }, el("b", {}, `${s.faults_recovered}/${s.faults_injected}`), "faults recovered"),
    el("div", { class: "tile" }, el("b", {}, s.recovery_p95_s == null ? "–" : `${fmt(s.recovery_p95_s)} s`), "recovery p95"),
    el("div", { class: "tile" }, el("b", {}, fmt(s.hidden_retries)), "hidden retries"),
    el("div", { class: "tile" + (s.lost_writes ? " bad" : "") }, el("b", {}, fmt(s.lost_writes)), "lost writes"),
  );
  const sloBody = $("#slo tbody");
  for (const r of report.slo) {
    sloBody.append(el("tr", { class: r.ok ? "" : "breach" },
      el("td", {}, r.ok ? "ok" : "BREACHED"), el("td", {}, r.name), el("td", { class: "num" }, fmt(r.value, 6)), el("td", { class: "num" }, fmt(r.limit, 6))));
  }
  if (report.interrupted) $("#notes").append(el("p", { class: "warn" }, `Interrupted by ${report.interrupted}: the figures cover what ran.`));
  if (report.aborted) $("#notes").append(el("p", { class: "warn" }, `Aborted: ${report.aborted}`));

  // ---- the timeline ------------------------------------------------------------------------
  const tl = report.timeline || { t: [], types: {} };
  const types = Object.keys(tl.types);
  // Seconds since the test started (as the fault table's offsets), each second's figures at its middle.
  const xs = tl.t.map((t) => tl.start + t + 0.5 - report.started_at);
  const start = tl.start;
  // Each fault on the timeline's axis: seconds since its first second.
  const faults = report.faults.map((f) => {
    const x0 = start == null ? null : f.offset_s;
    return { f, x0, end: x0 == null ? null : x0 + (f.window_s ?? 0), rec: f.recovery_s, dur: f.duration_s };
  });
  const faultLayer = (u) => {
    const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    ctx.save();
    for (const { f, x0, end, rec, dur } of faults) {
      if (x0 == null) continue;
      const px = (x) => u.valToPos(x, "x", true);
      const a = px(x0), b = px(end);
      ctx.fillStyle = f.ok ? "rgba(243, 156, 18, 0.13)" : "rgba(192, 57, 43, 0.15)";
      ctx.fillRect(a, top, Math.max(1, b - a), height);                      // the window
      if (rec != null && rec > 0) {                                          // until recovered: darker
        ctx.fillStyle = "rgba(231, 76, 60, 0.22)";
        ctx.fillRect(a, top, Math.max(1, px(x0 + rec) - a), height);
      } else if (f.ok && f.recovered === false) {
        ctx.fillStyle = "rgba(231, 76, 60, 0.22)";
        ctx.fillRect(a, top, Math.max(1, b - a), height);
      }
      if (dur > 0) {                                                         // a sustained fault: its span
        ctx.fillStyle = "rgba(52, 73, 94, 0.35)";
        ctx.fillRect(a, top + height - 6 * devicePixelRatio, Math.max(2, px(x0 + dur) - a), 6 * devicePixelRatio);
      }
      ctx.strokeStyle = "#b03a2e"; ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.beginPath(); ctx.moveTo(a, top); ctx.lineTo(a, top + height); ctx.stroke();
      ctx.fillStyle = "#7b241c"; ctx.font = `${11 * devicePixelRatio}px sans-serif`;
      ctx.fillText(`#${f.id} ${f.name}`, a + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
    }
    ctx.restore();
  };
  // Every chart has a left and a right axis of one width, so that their plots line up second by second.
  const AXIS = 72;
  const padded = (list) => {
    const left = { ...(list[0] || {}), size: AXIS };
    const right = list[1] ? { ...list[1], size: AXIS }
      : { side: 1, scale: left.scale || "y", size: AXIS, label: " ", values: (u, vals) => vals.map(() => ""), grid: { show: false }, ticks: { show: false } };
    return [left, right];
  };
  const width = () => Math.max(400, $("#charts").clientWidth - 10);
  const sync = uPlot.sync("resilience");
  const makeChart = (title, series, data, axes) => {
    const opts = {
      title, width: width(), height: 230, series: [{ label: "t (s)" }, ...series],
      scales: axes.scales || { x: { time: false } },
      axes: [{ label: "seconds since start" }, ...padded(axes.list || [])],
      cursor: { sync: { key: sync.key } },
      hooks: { drawClear: [faultLayer] },
      legend: { live: true },
    };
    const chart = new uPlot(opts, [xs, ...data], $("#charts").appendChild(el("div", { class: "chart" })));
    charts.push(chart);
    return chart;
  };
  if (xs.length) {
    const rateSeries = [], rateData = [];
    types.forEach((t, i) => {
      rateSeries.push({ label: `${t} req/s`, stroke: colorOf(t, i), width: 1.5 });
      rateData.push(tl.types[t].requests);
      rateSeries.push({ label: `${t} failures/s`, stroke: colorOf(t, i), dash: [4, 3], width: 2, scale: "f" });
      rateData.push(tl.types[t].failures);
    });
    makeChart("Throughput and failures", rateSeries, rateData, {
      scales: { x: { time: false }, f: { range: (u, lo, hi) => [0, Math.max(1, hi)] } },
      list: [{ label: "requests/s" }, { side: 1, scale: "f", label: "failures/s", grid: { show: false } }],
    });
    const latSeries = [], latData = [];
    types.forEach((t, i) => {
      latSeries.push({ label: `${t} p99 ms`, stroke: colorOf(t, i), width: 1.5 });
      latData.push(tl.types[t].p99_ms);
      latSeries.push({ label: `${t} p50 ms`, stroke: colorOf(t, i), width: 1, dash: [2, 3] });
      latData.push(tl.types[t].p50_ms);
    });
    makeChart("Latency (log scale)", latSeries, latData, {
      scales: { x: { time: false }, y: { distr: 3 } }, list: [{ label: "ms" }],
    });
    const extra = [{ label: "users", stroke: "#566573", width: 1.5 }], extraData = [tl.users];
    if (tl.witness_outage_ms) {
      extra.push({ label: "server outage ms (witness)", stroke: "#7b241c", fill: "rgba(123, 36, 28, 0.25)", scale: "o", paths: uPlot.paths.bars({ size: [0.9] }) });
      extraData.push(tl.witness_outage_ms);
    }
    makeChart("Users and the server's own outage", extra, extraData, {
      scales: { x: { time: false }, o: { range: [0, 1000] } },
      list: [{ label: "users" }, ...(tl.witness_outage_ms ? [{ side: 1, scale: "o", label: "outage ms", grid: { show: false } }] : [])],
    });
  } else {
    $("#charts").append(el("p", {}, "No timeline in this report (no request was made, or it was written by an older version)."));
  }

  const focus = (fault) => {
    if (fault.x0 == null) return;
    const lo = Math.max(0, fault.x0 - 3), hi = Math.min(xs[xs.length - 1] ?? fault.end, fault.end + 3);
    charts.forEach((c) => c.setScale("x", { min: lo, max: hi }));
    $("#timeline").scrollIntoView({ behavior: "smooth" });
  };
  $("#reset-zoom").onclick = () => charts.forEach((c) => c.setScale("x", { min: xs[0], max: xs[xs.length - 1] }));

  // ---- the faults -----------------------------------------------------------------------------
  const faultBody = $("#faults tbody");
  const recoveryCell = (r, ok) => (!ok ? "FAILED" : running && r.truncated ? "open" : r.recovery_s != null ? fmt(r.recovery_s)
    : r.truncated ? "cut short" : r.recovered === false ? "not recovered" : "–");
  for (const item of faults) {
    const f = item.f;
    const bad = !f.ok || (f.recovered === false && !f.truncated);
    const row = el("tr", { id: `fault-${f.id}`, class: bad ? "breach" : "" },
      el("td", {}, el("a", { href: `#fault-${f.id}`, onclick: (e) => { e.preventDefault(); focus(item); } }, `#${f.id}`)),
      el("td", {}, f.trigger === "schedule" ? f.name : `${f.name} (${f.trigger})`),
      el("td", { class: "num" }, fmt(f.offset_s, 1)),
      el("td", { class: "num" }, fmt(f.requests)), el("td", { class: "num" }, fmt(f.failures)),
      el("td", { class: "num" }, fmt(f.degraded)), el("td", { class: "num" }, fmt(f.hidden_retries)),
      el("td", { class: "num" }, fmt(f.users_affected)),
      el("td", { class: "num" }, f.user_recovery_s ? `${fmt(f.user_recovery_s.p50)} / ${fmt(f.user_recovery_s.p95)} / ${fmt(f.user_recovery_s.max)}` : "–"),
      el("td", { class: "num" }, fmt(f.outage_s)), el("td", { class: "num strong" }, recoveryCell(f, f.ok)),
      el("td", { class: "num" }, fmt(f.client_excess_s)),
      el("td", { class: "num" }, f.duration_s > 0 ? fmt(f.duration_s) : "–"),
    );
    faultBody.append(row);
    const typed = Object.entries(f.by_type || {});
    if (typed.length > 1) {
      for (const [t, w] of typed) {
        faultBody.append(el("tr", { class: "sub" }, el("td", {}, ""), el("td", {}, `↳ ${t}`), el("td", {}, ""),
          el("td", { class: "num" }, fmt(w.requests)), el("td", { class: "num" }, fmt(w.failures)), el("td", { class: "num" }, fmt(w.degraded)),
          el("td", { class: "num" }, fmt(w.hidden_retries)), el("td", { class: "num" }, fmt(w.users_affected)),
          el("td", { class: "num" }, `${fmt(w.user_recovery_s.p50)} / ${fmt(w.user_recovery_s.p95)} / ${fmt(w.user_recovery_s.max)}`),
          el("td", {}, ""), el("td", { class: "num" }, recoveryCell(w, f.ok)), el("td", {}, ""), el("td", {}, "")));
      }
    }
    if (f.error || f.revert_error) faultBody.append(el("tr", { class: "sub" }, el("td", {}, ""), el("td", { colspan: "12", class: "warn" }, f.error || f.revert_error)));
  }
  if (!faults.length) faultBody.append(el("tr", {}, el("td", { colspan: "13" }, "No fault was injected.")));

  // ---- integrity ------------------------------------------------------------------------------
  const integ = report.integrity || {};
  const intBody = $("#integrity tbody");
  if (integ.error) intBody.append(el("tr", { class: "breach" }, el("td", { colspan: "5" }, `Not checked: ${integ.error}`)));
  else for (const [name, r] of Object.entries(integ)) {
    intBody.append(el("tr", { class: r.lost || r.duplicated ? "breach" : "" }, el("td", {}, name), el("td", { class: "num" }, fmt(r.acknowledged)),
      el("td", { class: "num" }, fmt(r.lost)), el("td", { class: "num" }, fmt(r.duplicated)), el("td", { class: "num" }, fmt(r.unacknowledged_applied))));
  }
  if (!Object.keys(integ).length) intBody.append(el("tr", {}, el("td", { colspan: "5" }, "No workload with an integrity check ran.")));
  document.body.dataset.ready = "1";
  };

  draw(JSON.parse(document.getElementById("report-data").textContent));
  window.addEventListener("resize", () => charts.forEach((c) => c.setSize({ width: Math.max(400, $("#charts").clientWidth - 10), height: 230 })));
  const live = document.body.dataset.live;  // the web UI's live view: the report as it stands, every 2 s
  if (live) {
    setInterval(async () => {
      try {
        const response = await fetch(live, { cache: "no-store", credentials: "same-origin" });
        if (response.ok) draw(await response.json());
      } catch (e) { /* the next poll tries again */ }
    }, 2000);
  }
})();
