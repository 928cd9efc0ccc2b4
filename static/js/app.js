/* Usage Platform pages: draws the Chart.js charts described by server-rendered JSON.
 *
 * A chart is `<canvas data-chart="ID">` next to `{{ spec|json_script:"ID" }}`; the spec is
 * {type: "line" | "bar" | "hbar", labels: [...], series: [{label, data, color?}], band?: {label, lower, upper},
 *  percent?: bool, partial_from?: index, partial_label?: text, stacked?: bool}. Points from `partial_from` on
 * (today, this week, a week the range cuts short) are not complete: a line's segments are dashed and
 * its points hollow, a bar is paler, and the tooltip adds `partial_label` ("so far"), so they do
 * not read as a drop. `stacked`: the series' bars pile up, as a breakdown's values do. Charts are (re)drawn on
 * page load and on every htmx swap, so filters that re-render a fragment redraw its charts. No
 * inline scripts: the pages work under a strict CSP.
 */
(function () {
  "use strict";

  var PALETTE = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#84cc16", "#f97316"];
  var numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }

  var ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;
  var dayFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" });

  var BAR_NAME_CHARS = 24;

  // "2026-11-05" → "5 Nov" on axes (days are UTC days); other labels unchanged.
  function shortLabel(label) {
    return typeof label === "string" && ISO_DAY.test(label) ? dayFormat.format(new Date(label + "T00:00:00Z")) : label;
  }

  function readSpec(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try {
      return JSON.parse(el.textContent);
    } catch (e) {
      return null;
    }
  }

  function buildConfig(spec) {
    var horizontal = spec.type === "hbar";
    var type = spec.type === "line" ? "line" : "bar";
    var datasets = [];
    if (spec.band) {
      // The forecast interval: the upper line fills down to the lower one.
      datasets.push({
        label: spec.band.label + " (upper)", data: spec.band.upper, borderWidth: 0, pointRadius: 0,
        backgroundColor: alpha("#0ea5e9", 0.16), fill: "+1", type: "line", tension: 0.25,
      });
      datasets.push({
        label: spec.band.label + " (lower)", data: spec.band.lower, borderWidth: 0, pointRadius: 0,
        backgroundColor: alpha("#0ea5e9", 0.16), fill: false, type: "line", tension: 0.25,
      });
    }
    var partialFrom = typeof spec.partial_from === "number" ? spec.partial_from : null;
    (spec.series || []).forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      var pointRadius = type === "line" ? (s.data.length > 45 ? 0 : 2) : 0;
      var partial = partialFrom === null ? {} : type === "line" ? {
        segment: { borderDash: function (ctx) { return ctx.p1DataIndex >= partialFrom ? [6, 4] : undefined; } },
        pointRadius: function (ctx) { return ctx.dataIndex >= partialFrom ? 4 : pointRadius; },
        pointBackgroundColor: function (ctx) { return ctx.dataIndex >= partialFrom ? "#fff" : color; },
      } : {
        backgroundColor: function (ctx) { return alpha(color, ctx.dataIndex >= partialFrom ? 0.35 : 0.85); },
      };
      datasets.push(Object.assign({
        label: s.label,
        data: s.data,
        borderColor: color,
        backgroundColor: type === "line" ? alpha(color, 0.08) : alpha(color, 0.85),
        borderWidth: type === "line" ? 2 : 0,
        borderDash: s.dashed ? [6, 4] : undefined,
        borderRadius: type === "bar" ? 4 : 0,
        pointRadius: pointRadius,
        pointHoverRadius: 4,
        fill: type === "line" && !s.dashed && (spec.series.length === 1),
        tension: 0.25,
        spanGaps: true,
        // A series of another scale (users beside events) reads against its own axis.
        yAxisID: s.axis === "right" ? "right" : undefined,
      }, partial));
    });
    // Counts tick in whole numbers (no "0.5 users" on a small chart); averages may not.
    var integral = (spec.series || []).every(function (s) {
      return (s.data || []).every(function (v) { return v === null || Number.isInteger(v); });
    });
    var valueAxis = {
      beginAtZero: true,
      grid: { color: "#eef0f6" },
      border: { display: false },
      ticks: {
        precision: integral ? 0 : undefined,
        color: "#6b7285",
        callback: function (v) { return spec.percent ? v + "%" : numberFormat.format(v); },
      },
    };
    var categoryAxis = {
      grid: { display: false },
      border: { display: false },
      ticks: {
        // Every bar of a horizontal chart is named (its rows have room); dates may skip.
        color: "#6b7285", maxRotation: 0, autoSkip: !horizontal, autoSkipPadding: 12,
        callback: function (value) {
          var label = shortLabel(this.getLabelForValue(value));
          // A bar's name beside a horizontal chart is cut short, as Chart.js would otherwise
          // cut it at the canvas edge; the tooltip names it whole.
          return horizontal && typeof label === "string" && label.length > BAR_NAME_CHARS
            ? label.slice(0, BAR_NAME_CHARS - 1) + "…" : label;
        },
      },
    };
    if (spec.stacked) {
      valueAxis.stacked = true;
      categoryAxis.stacked = true;
    }
    return {
      type: type,
      data: { labels: spec.labels || [], datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: {
            display: (spec.series || []).length > 1 || !!spec.band,
            labels: {
              boxWidth: 12, color: "#3b4256",
              // The band shows once in the legend (as its upper edge).
              filter: function (item) { return !/\(lower\)$/.test(item.text); },
            },
          },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var v = ctx.parsed[horizontal ? "x" : "y"];
                var soFar = partialFrom !== null && ctx.dataIndex >= partialFrom ? " (" + (spec.partial_label || "so far") + ")" : "";
                return " " + ctx.dataset.label + ": " + numberFormat.format(v) + (spec.percent ? "%" : "") + soFar;
              },
            },
          },
        },
        scales: horizontal ? { x: valueAxis, y: categoryAxis } : Object.assign(
          { x: categoryAxis, y: valueAxis },
          (spec.series || []).some(function (s) { return s.axis === "right"; })
            ? { right: Object.assign({}, valueAxis, { position: "right", stacked: false, grid: { drawOnChartArea: false } }) }
            : {}
        ),
      },
    };
  }

  function drawCharts(root) {
    if (!window.Chart || !root || !root.querySelectorAll) return;
    var canvases = Array.prototype.slice.call(root.querySelectorAll("canvas[data-chart]"));
    if (root.matches && root.matches("canvas[data-chart]")) canvases.push(root);
    canvases.forEach(function (canvas) {
      var spec = readSpec(canvas.getAttribute("data-chart"));
      if (!spec) return;
      var existing = window.Chart.getChart(canvas);
      if (existing) existing.destroy();
      new window.Chart(canvas, buildConfig(spec));
    });
  }

  function destroyCharts(root) {
    if (!window.Chart || !root || !root.querySelectorAll) return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  // Copy buttons: <button data-copy="#element-id">; the text of the target goes to the clipboard.
  function onCopyClick(event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    var text = target.value !== undefined ? target.value : target.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text.trim()).then(done, function () {});
    } else {
      var area = document.createElement("textarea");
      area.value = text.trim();
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* clipboard unavailable */ }
      area.remove();
    }
  }

  // Funnel builder: add/remove step rows (2–10) without a round trip.
  function onStepButton(event) {
    var add = event.target.closest("[data-step-add]");
    var remove = event.target.closest("[data-step-remove]");
    if (!add && !remove) return;
    event.preventDefault();
    var list = document.querySelector("[data-steps]");
    if (!list) return;
    var rows = list.querySelectorAll("[data-step-row]");
    var max = parseInt(list.getAttribute("data-max") || "10", 10);
    var min = parseInt(list.getAttribute("data-min") || "2", 10);
    if (add && rows.length < max) {
      var clone = rows[rows.length - 1].cloneNode(true);
      var input = clone.querySelector("input, select");
      if (input.tagName === "SELECT") input.selectedIndex = 0; else input.value = "";
      var caption = clone.querySelector("[data-step-name]");
      if (caption) caption.textContent = "";
      list.appendChild(clone);
    } else if (remove && rows.length > min) {
      remove.closest("[data-step-row]").remove();
    }
    list.querySelectorAll("[data-step-row]").forEach(function (row, i) {
      var num = row.querySelector(".step-num");
      if (num) num.textContent = String(i + 1);
      var field = row.querySelector("input, select");
      if (field) field.id = "step-" + (i + 1);
      var label = row.querySelector("label");
      if (label) { label.setAttribute("for", "step-" + (i + 1)); label.textContent = "Step " + (i + 1); }
    });
  }

  // Each funnel step names the feature its key belongs to (the datalist's label), as typed.
  function onStepInput(event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-step-row] input[list]")) return;
    var caption = input.closest("[data-step-row]").querySelector("[data-step-name]");
    if (!caption) return;
    var key = input.value.trim();
    var name = key ? null : "";
    var options = input.list ? input.list.options : [];
    for (var i = 0; key && i < options.length; i++) {
      if (options[i].value === key) { name = options[i].textContent; break; }
    }
    // A feature named as its key says nothing more; anything else is an event type, or a
    // feature's name or id (the server tells which, or that it is none of them).
    caption.textContent = name === null ? "not a feature's key: an event type, or a feature's name or id" : (name === key ? "" : name);
  }

  // "Save as segment" takes the filters the form holds now (the link's own query is the
  // page's as it was rendered; without JavaScript that one is followed).
  function onSaveSegment(evt) {
    var link = evt.target.closest && evt.target.closest("[data-save-segment]");
    var form = link && link.closest("form");
    if (!form) return;
    evt.preventDefault();
    var query = new URLSearchParams(new FormData(form));
    query.set("next", window.location.pathname);
    window.location.href = link.getAttribute("href").split("?")[0] + "?" + query.toString();
  }

  document.addEventListener("click", onCopyClick);
  document.addEventListener("click", onSaveSegment);
  document.addEventListener("click", onStepButton);
  document.addEventListener("input", onStepInput);
  document.addEventListener("htmx:beforeSwap", function (evt) { destroyCharts(evt.detail.target); });
  // htmx fires `htmx:load` on <body> once at start-up and on every swapped-in fragment.
  document.addEventListener("htmx:load", function (evt) { drawCharts(evt.detail.elt); });

  window.UsagePlatform = { drawCharts: drawCharts };
})();
