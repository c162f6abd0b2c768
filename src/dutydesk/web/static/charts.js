// The desk's series charts (uPlot), for the dashboards and the review alike.
//
// <div class="chart" data-chart='{...}'>: one series as /api/v1/series/chart gives it (times,
// values, the baseline band median/low/high, fired points, annotations), and optionally
// `period: [start, end]` (epoch seconds), shaded: the stretch a review covers.
// <div class="counts-chart" data-chart='{...}'>: counts per bucket as bars, `times` and
// `series: [{label, values}]`.
// Each chart takes the width of its box (at most 1100 px), so it fits a phone's screen.
(function () {
  "use strict";
  var noteColours = {release: "#2e7d32", redrive: "#6a1b9a", silence: "#9e9e9e", change: "#ef6c00"};
  var countColours = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a"];

  function widthOf(box) {
    return Math.max(Math.min(box.clientWidth || 320, 1100), 260);
  }

  function zoned() {
    return typeof deskTzDate === "function" ? {tzDate: deskTzDate} : {};
  }

  function merged(base, more) {
    Object.keys(more).forEach(function (key) { base[key] = more[key]; });
    return base;
  }

  function seriesChart(box, d) {
    if (!d.times.length) { return; }
    var firedAt = {};
    d.fired.forEach(function (f) { firedAt[f.at] = f.silenced ? "silenced" : "fired"; });
    var fired = d.times.map(function (t, i) {
      var near = Object.keys(firedAt).some(function (at) { return Math.abs(at - t) < 3600; });
      return near ? d.values[i] : null;
    });
    var shade = function (u) {
      if (!d.period) { return; }
      var left = Math.max(u.valToPos(d.period[0], "x", true), u.bbox.left);
      var right = Math.min(u.valToPos(d.period[1], "x", true), u.bbox.left + u.bbox.width);
      if (right <= left) { return; }
      u.ctx.save();
      u.ctx.fillStyle = "rgba(255,193,7,0.16)";
      u.ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
      u.ctx.restore();
    };
    var annotate = function (u) {
      var ctx = u.ctx;
      ctx.save();
      (d.annotations || []).forEach(function (a) {
        var x = u.valToPos(a.at, "x", true);
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) { return; }
        ctx.strokeStyle = noteColours[a.kind] || "#555";
        ctx.setLineDash([4, 4]);
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      });
      ctx.restore();
    };
    new uPlot(merged({
      width: widthOf(box), height: 220,
      scales: {x: {time: true}},
      series: [{},
        {label: "value", stroke: "#1565c0", width: 2},
        {label: "median", stroke: "#757575", dash: [6, 4]},
        {label: "low", stroke: "rgba(117,117,117,0.3)"},
        {label: "high", stroke: "rgba(117,117,117,0.3)"},
        {label: "fired", stroke: "#c62828", width: 0, points: {show: true, size: 9, fill: "#c62828"}}],
      bands: [{series: [4, 3], fill: "rgba(21,101,192,0.12)"}],
      hooks: {drawClear: [shade], draw: [annotate]}
    }, zoned()), [d.times, d.values, d.median, d.low, d.high, fired], box);
  }

  function countsChart(box, d) {
    if (!d.times.length) { return; }
    var bars = uPlot.paths && uPlot.paths.bars;
    var count = d.series.length;
    var series = [{}].concat(d.series.map(function (s, i) {
      var one = {label: s.label, stroke: countColours[i % countColours.length], width: 2};
      if (bars) {
        one.fill = one.stroke;
        // Two series side by side (the first left of its time, the second right), more overlaid.
        var align = count === 2 ? (i === 0 ? -1 : 1) : 0;
        one.paths = bars({size: [count === 2 ? 0.4 : 0.6, 40], align: align});
        one.points = {show: false};
      }
      return one;
    }));
    new uPlot(merged({
      width: widthOf(box), height: 200,
      scales: {x: {time: true, range: function (u, min, max) {
        var pad = d.times.length > 1 ? (d.times[1] - d.times[0]) / 2 : 86400;
        return [min - pad, max + pad];
      }}, y: {range: function (u, min, max) { return [0, Math.max(max, 1) * 1.1]; }}},
      series: series
    }, zoned()), [d.times].concat(d.series.map(function (s) { return s.values; })), box);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof uPlot === "undefined") { return; }
    document.querySelectorAll("div.chart[data-chart]").forEach(function (box) {
      seriesChart(box, JSON.parse(box.dataset.chart));
    });
    document.querySelectorAll("div.counts-chart[data-chart]").forEach(function (box) {
      countsChart(box, JSON.parse(box.dataset.chart));
    });
  });
}());
