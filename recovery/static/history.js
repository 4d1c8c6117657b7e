// The trend page (recovery/history.py): built from the embedded data alone, with uPlot.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("trend-data").textContent);
  const $ = (s) => document.querySelector(s);
  const el = (tag, attrs, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    for (const c of kids) n.append(c instanceof Node ? c : document.createTextNode(c == null ? "–" : String(c)));
    return n;
  };
  $("#facts").append(el("span", {}, `${data.runs.length} runs, the first ${data.baseline_runs} the baseline`));
  data.runs.forEach((r, i) => {
    $("#runs tbody").append(el("tr", { class: r.verdict === "fail" ? "breach" : "" }, el("td", {}, i + 1),
      el("td", {}, r.started_at ? new Date(r.started_at * 1000).toISOString().replace("T", " ").slice(0, 19) : "–"),
      el("td", {}, r.run_id), el("td", {}, r.verdict), el("td", {}, el("a", { href: r.link || r.file }, r.link || r.file))));
  });
  const xs = data.runs.map((_, i) => i + 1);
  const FIGURES = [["recovery_p95_s", "recovery p95 (s)"], ["error_rate", "error rate in windows"], ["lost_writes", "lost writes"]];
  for (const [name, fault] of Object.entries(data.faults)) {
    const section = el("section", {}, el("h2", {}, name));
    $("#faults").append(section);
    for (const [key, title] of FIGURES) {
      const values = fault.series[key];
      const band = fault.band[key];
      const bad = new Set(fault.regressions[key]);
      const marks = values.map((v, i) => (bad.has(i) ? v : null));
      const lo = xs.map(() => (band ? band[0] : null)), hi = xs.map(() => (band ? band[1] : null));
      const box = section.appendChild(el("div", { class: "chart" }));
      new uPlot({
        title, width: Math.max(400, section.clientWidth - 40), height: 200,
        scales: { x: { time: false } },
        axes: [{ label: "run", incrs: [1, 2, 5, 10, 20, 50, 100] }, { size: 72 }],
        series: [{ label: "run" },
          { label: "baseline low", stroke: "rgba(30,132,73,0.5)", width: 1, dash: [3, 3] },
          { label: "baseline high", stroke: "rgba(30,132,73,0.5)", width: 1, dash: [3, 3] },
          { label: title, stroke: "#2471a3", width: 2, points: { size: 7 } },
          { label: "regression", stroke: "#c0392b", width: 0, points: { size: 11, fill: "#c0392b", stroke: "#c0392b" } }],
        bands: [{ series: [2, 1], fill: "rgba(30,132,73,0.12)" }],
        cursor: { drag: { x: false } },
      }, [xs, lo, hi, values, marks], box);
    }
  }
  document.body.dataset.ready = "1";
})();
