/* Dashboard behaviour: charts from json_script data, live refresh of the overview, training
   progress. Every table is rendered by the server first, so the pages read fine without this. */
(function () {
  "use strict";
  const palette = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d", "#495057", "#364fc7"];
  const charts = {};

  function data(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function chart(canvasId, config) {
    const canvas = document.getElementById(canvasId);
    if (!canvas || typeof Chart === "undefined") return null;
    if (charts[canvasId]) charts[canvasId].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts[canvasId] = new Chart(canvas, config);
    return charts[canvasId];
  }

  function shortTime(iso) { return iso ? iso.substring(11, 16) : ""; }

  function ratesChart(c) {
    if (!c) return;
    chart("chart-rates", {
      type: "line",
      data: {
        labels: c.requests.map((p) => shortTime(p.t)),
        datasets: [
          { label: "requests /s", data: c.requests.map((p) => p.v), borderColor: palette[0], spanGaps: true, pointRadius: 2 },
          { label: "events /s", data: c.events.map((p) => p.v), borderColor: palette[1], spanGaps: true, pointRadius: 2 },
        ],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
  }

  function cell(tr, value, numeric) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "–" : String(value);
    if (numeric) td.className = "num";
    tr.appendChild(td);
  }

  function fillTable(table, value) {
    const cols = table.dataset.cols.split(",");
    const body = table.tBodies[0];
    const rows = Array.isArray(value) ? value : Object.entries(value || {}).map(([key, v]) => ({ key: key, value: v }));
    if (!rows.length) return; // keep the server's "nothing yet" row
    body.replaceChildren();
    rows.forEach((row) => {
      const tr = document.createElement("tr");
      cols.forEach((col, i) => cell(tr, row[col], i > 0 && typeof row[col] === "number"));
      body.appendChild(tr);
    });
  }

  // "2026-11-29T07:13:45.543727+00:00" -> "2026-11-29 07:13:45", the form the other dashboard times use
  function stamp(iso) {
    return String(iso).slice(0, 19).replace("T", " ");
  }

  function refreshOverview() {
    const note = document.getElementById("overview-note");
    if (!note) return;
    const every = Math.max(2, Number(note.dataset.refresh || 5)) * 1000;
    async function tick() {
      try {
        const response = await fetch(note.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) {
          const o = await response.json();
          document.querySelectorAll("[data-k]").forEach((el) => {
            const v = o[el.dataset.k];
            el.textContent = v === null || v === undefined ? "–" : el.dataset.k.endsWith("_at") ? stamp(v) : String(v);
          });
          document.querySelectorAll("table[data-table]").forEach((t) => fillTable(t, o[t.dataset.table]));
          ratesChart(o.chart);
        }
      } finally {
        setTimeout(tick, every);
      }
    }
    setTimeout(tick, every);
  }

  function barChart(canvasId, payload) {
    if (!payload) return;
    chart(canvasId, {
      type: "bar",
      data: {
        labels: payload.labels,
        datasets: payload.datasets.map((d, i) => ({ label: d.label, data: d.data, backgroundColor: palette[i % palette.length] })),
      },
      options: Object.assign({ scales: { y: { beginAtZero: true } } }, payload.options || {}),
    });
  }

  function stackedSeries(canvasId, payload) {
    if (!payload) return;
    chart(canvasId, {
      type: "bar",
      data: {
        labels: payload.t.map(shortTime),
        datasets: Object.entries(payload.series).map(([label, values], i) => ({ label: label, data: values, backgroundColor: palette[i % palette.length] })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  }

  function deliveryChart(canvasId, payload) {
    if (!payload) return;
    const s = payload.series;
    const line = (label, values, i, axis) => ({ label: label, data: values, borderColor: palette[i], backgroundColor: palette[i], spanGaps: true, pointRadius: 2, yAxisID: axis });
    chart(canvasId, {
      type: "line",
      data: {
        labels: payload.t.map(shortTime),
        datasets: [
          line("served impressions", s.served, 0, "y"),
          line("viewable impressions", s.viewable, 2, "y"),
          line("clicks", s.clicks, 1, "y"),
          Object.assign(line("spend", s.spend, 3, "spend"), { borderDash: [6, 4] }),
        ],
      },
      options: {
        scales: {
          y: { beginAtZero: true, title: { display: true, text: "per interval" } },
          spend: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "spend" } },
        },
      },
    });
  }

  // {labels, datasets: [{label, data, type?, borderDash?}]}: lines (or bars where a dataset says so)
  function lineChart(canvasId, payload) {
    if (!payload) return;
    chart(canvasId, {
      type: "line",
      data: {
        labels: payload.labels,
        datasets: payload.datasets.map((d, i) => Object.assign({ borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], pointRadius: 2, spanGaps: true }, d)),
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
  }

  function trainingProgress() {
    const box = document.getElementById("training");
    if (!box || !box.dataset.url) return;
    const bar = box.querySelector(".progress > span");
    const text = box.querySelector("[data-run-text]");
    const loaded = Date.now();
    async function tick() {
      let again = true;
      try {
        const response = await fetch(box.dataset.url, { credentials: "same-origin" });
        if (response.ok) {
          const run = (await response.json()).run;
          const started = box.dataset.after !== "";
          const waiting = started && (!run || run.id <= Number(box.dataset.after));
          if (waiting && Date.now() - loaded < 120000) {
            text.textContent = "Waiting for the training run to start…";
          } else if (run) {
            bar.style.width = run.percent + "%";
            box.querySelector(".progress").setAttribute("aria-valuenow", String(run.percent));
            text.textContent = "Run " + run.id + ": " + run.status + " · " + (run.stage || "") + " " + run.percent + "% · " + (run.message || "");
            if (run.status !== "running") {
              again = false;
              // reload for the registry's new row, unless this page was drawn after the run had ended
              // (a training run finished within the POST): reloading then only drops the page's message
              const shownFinal = box.dataset.shown === run.id + ":" + run.status;
              if (box.dataset.wasRunning === "1" || (started && !shownFinal)) window.location.replace(window.location.pathname + "#training");
            } else {
              box.dataset.wasRunning = "1";
            }
          }
        }
      } finally {
        if (again) setTimeout(tick, 1000);
      }
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    ratesChart(data("overview-chart"));
    refreshOverview();
    barChart("chart-compare", data("compare-chart"));
    barChart("chart-per-category", data("per-category-chart"));
    barChart("chart-profile", data("profile-chart"));
    barChart("chart-interests", data("interests-chart"));
    stackedSeries("chart-events", data("events-series"));
    stackedSeries("chart-quarantine", data("quarantine-series"));
    stackedSeries("chart-delivery", data("delivery-series"));
    deliveryChart("chart-ads-delivery", data("ads-delivery"));
    lineChart("chart-analytics", data("analytics-chart"));
    lineChart("chart-pacing", data("pacing-chart"));
    document.querySelectorAll("select[data-autosubmit]").forEach((el) => el.addEventListener("change", () => el.form.submit()));
    trainingProgress();
  });
})();
