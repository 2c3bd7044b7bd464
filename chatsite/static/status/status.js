/* The live status page: poll the JSON feed, fill the table, draw the last minutes with
 * uPlot.  Every value goes in through textContent, never as HTML.
 *
 * What is shown is declared once, below: CHARTS (each with a sentence saying what it
 * measures) and COLUMNS (each with a header, a meaning and how to read a worker's
 * value).  To show a new figure, add an entry; nothing else changes. */
(function () {
  "use strict";

  var root = document.getElementById("status");
  if (!root || typeof uPlot === "undefined") {
    return;
  }
  var FEED = root.getAttribute("data-feed");
  var PERIOD_MS = parseFloat(root.getAttribute("data-period-ms"));
  var KEEP_SECONDS = parseFloat(root.getAttribute("data-chart-seconds"));
  var CHART_HEIGHT = 170;
  var stateLine = document.getElementById("status-state");
  var thead = document.querySelector("#status-workers thead");
  var tbody = document.querySelector("#status-workers tbody");
  var tfoot = document.querySelector("#status-workers tfoot");

  /* ---- helpers ---- */
  function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }
  function ms(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    var v = seconds * 1000;
    return (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " ms";
  }
  function sum(obj) {
    var n = 0;
    Object.keys(obj || {}).forEach(function (k) { n += obj[k]; });
    return n;
  }
  /* A counter's increase per second between two readings (null on the first). */
  function rate(feed, previous, read) {
    if (!previous || !previous.running) { return null; }
    var dt = feed.time - previous.time;
    return dt > 0 ? Math.max(0, (read(feed.total) - read(previous.total)) / dt) : null;
  }
  /* The histogram bucket bound below which 99% of the observations since the last
   * reading fell (null when there were none). */
  function p99(now, before) {
    if (!now) { return null; }
    var counts = now.counts.map(function (c, i) {
      return before ? c - (before.counts[i] || 0) : c;
    });
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    if (total <= 0) { return null; }
    var running = 0;
    for (var i = 0; i < counts.length; i++) {
      running += counts[i];
      if (running >= total * 0.99) {
        return i < now.bounds.length ? now.bounds[i] : now.bounds[now.bounds.length - 1];
      }
    }
    return null;
  }
  /* A chart line: the p99 of the histogram ``field`` of the total, in ms. */
  function p99Line(label, color, field) {
    return {label: label, color: color, value: function (feed, previous) {
      if (!previous || !previous.running) { return null; }
      var q = p99(feed.total[field], previous.total[field]);
      return q === null ? null : q * 1000;
    }};
  }
  function brokerText(workers) {
    var withBroker = workers.filter(function (w) { return w.broker; });
    if (!withBroker.length) { return "none"; }
    var up = withBroker.filter(function (w) { return w.broker.connected; }).length;
    return up === withBroker.length ? "connected" : up + "/" + withBroker.length + " connected";
  }
  function stateText(w) {
    if (w.stopping) { return "draining"; }
    return w.accepting ? "accepting" : "paused";
  }

  /* ---- what the page shows ---- */
  var CHARTS = [
    {key: "connections", title: "Open connections",
     what: "TCP connections open on all workers at each reading (idle keep-alive included).",
     lines: [{label: "connections", color: "#2257d6",
              value: function (feed) { return feed.total.connections; }}]},
    {key: "parked", title: "Waiting clients",
     what: "Clients the server holds without a thread: long-polls parked until an event, " +
           "open event streams and WebSockets.",
     lines: [{label: "parked long-polls", color: "#137333",
              value: function (feed) { return feed.total.parked; }},
             {label: "event streams", color: "#b04a17",
              value: function (feed) { return feed.total.streaming; }},
             {label: "WebSockets", color: "#2257d6",
              value: function (feed) { return feed.total.websockets; }}]},
    {key: "deliveries", title: "Deliveries per second",
     what: "Events handed to waiting clients (a long-poll answer or a stream event), " +
           "per second between two readings.",
     lines: [{label: "deliveries/s", color: "#8e3db8",
              value: function (feed, previous) {
                return rate(feed, previous, function (t) { return t.delivered_total; });
              }}]},
    {key: "threads", title: "Application threads",
     what: "Pool threads running views and renderers at each reading, and requests " +
           "queued for a thread (parked long-polls and streams hold none).",
     lines: [{label: "busy", color: "#2257d6",
              value: function (feed) { return feed.total.threads_busy || 0; }},
             {label: "queued", color: "#b4234f",
              value: function (feed) { return feed.total.queued || 0; }}]},
    {key: "queue-wait", title: "Time queued for a thread, p99 of each interval (ms)",
     what: "How long requests and renders waited for a free pool thread: the 99th " +
           "percentile between two readings (bucket bound). Near 0 unless every thread " +
           "is busy.",
     lines: [p99Line("queued p99 (ms)", "#8e3db8", "queued_seconds")]},
    {key: "lag", title: "Event-loop lag, p99 of each interval (ms)",
     what: "How late the loop's timer probes ran: the 99th percentile of the probes " +
           "between two readings, rounded up to the bound of its histogram bucket. " +
           "The table's \u201cloop lag\u201d is the single latest probe, exact.",
     lines: [p99Line("lag p99 (ms)", "#b4234f", "loop_lag_seconds")]}
  ];

  // show: the snapshot field shown as it is; else value(w, row): w is a worker's snapshot
  // (or the total); row = {name, broker, state}.
  var COLUMNS = [
    {field: "worker", label: "worker", what: "the worker's process id",
     value: function (w, row) { return row.name; }},
    {field: "connections", label: "conns", what: "open connections", show: "connections"},
    {field: "parked", label: "parked", what: "long-polls waiting for an event",
     show: "parked"},
    {field: "streams", label: "streams", what: "open event streams", show: "streaming"},
    {field: "published", label: "published", what: "events published since start",
     show: "published_total"},
    {field: "deliveries", label: "delivered", what: "events delivered to clients since start",
     show: "delivered_total"},
    {field: "requests", label: "requests", what: "HTTP requests since start",
     show: "requests_total"},
    {field: "5xx", label: "5xx", what: "server-error answers since start",
     value: function (w) { return (w.responses || {})["5xx"] || 0; }},
    {field: "undelivered", label: "undeliv.", what: "events that found a client gone",
     show: "not_delivered"},
    {field: "rejected", label: "rejected", what: "connections or requests refused at a cap",
     value: function (w) { return sum(w.cap_hits); }},
    {field: "lag", label: "loop lag", what: "lateness of the latest loop probe",
     value: function (w) { return ms(w.loop_lag_last_s); }},
    {field: "threads", label: "threads",
     what: "pool threads running application code / pool threads",
     value: function (w) { return (w.threads_busy || 0) + "/" + (w.threads || 0); }},
    {field: "queued", label: "queued",
     what: "requests waiting for a pool thread (and how many were refused with 503)",
     value: function (w) {
       return (w.queued || 0) + (w.queue_refused_total ?
                                 " (" + w.queue_refused_total + " refused)" : "");
     }},
    {field: "rss", label: "memory", what: "resident memory (RSS)",
     value: function (w) { return mib(w.rss_bytes); }},
    {field: "broker", label: "broker", what: "the Redis broker link, when there is one",
     value: function (w, row) { return row.broker; },
     bad: function (w, row) { return row.broker !== "connected" && row.broker !== "none"; }},
    {field: "state", label: "state", what: "accepting, paused (at a cap) or draining",
     value: function (w, row) { return row.state; },
     bad: function (w, row) { return !/accepting$/.test(row.state) || /^0\//.test(row.state); }}
  ];

  /* ---- charts ---- */
  var chartsBox = document.getElementById("status-charts");
  var times = [];
  var data = {};                         // chart key -> one array per line
  var charts = {};
  function widthOf(el) { return Math.max(240, el.clientWidth); }
  /* Tick labels: hours and minutes, with seconds when ticks are less than a minute apart. */
  function clock(u, ticks) {
    var seconds = ticks.length > 1 && ticks[1] - ticks[0] < 60;
    var format = seconds ? {hour: "2-digit", minute: "2-digit", second: "2-digit"}
                         : {hour: "2-digit", minute: "2-digit"};
    return ticks.map(function (t) {
      return new Date(t * 1000).toLocaleTimeString([], format);
    });
  }
  CHARTS.forEach(function (spec) {
    var figure = document.createElement("figure");
    figure.setAttribute("data-chart", spec.key);
    var caption = document.createElement("figcaption");
    var title = document.createElement("strong");
    title.textContent = spec.title;
    var what = document.createElement("span");
    what.className = "chart-what";
    what.textContent = spec.what;
    caption.appendChild(title);
    caption.appendChild(what);
    var plotBox = document.createElement("div");
    plotBox.id = "chart-" + spec.key;
    figure.appendChild(caption);
    figure.appendChild(plotBox);
    chartsBox.appendChild(figure);
    data[spec.key] = spec.lines.map(function () { return []; });
    charts[spec.key] = new uPlot({
      width: widthOf(plotBox),
      height: CHART_HEIGHT,
      cursor: {show: false},
      legend: {show: spec.lines.length > 1, live: false},
      axes: [{space: 90, values: clock}, {size: 52}],
      scales: {x: {time: true}},
      series: [{}].concat(spec.lines.map(function (line) {
        return {label: line.label, stroke: line.color, width: 2, spanGaps: true};
      }))
    }, [[]].concat(data[spec.key]), plotBox);
  });
  window.statusCharts = charts; // for the functional tests: charts hold data
  function fit() {
    Object.keys(charts).forEach(function (key) {
      charts[key].setSize({width: widthOf(document.getElementById("chart-" + key)),
                           height: CHART_HEIGHT});
    });
  }
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(fit).observe(chartsBox);
  } else {
    window.addEventListener("resize", fit);
  }

  function record(feed, previous) {
    times.push(feed.time);
    var drop = 0;
    while (drop < times.length && times[drop] < feed.time - KEEP_SECONDS) { drop += 1; }
    times.splice(0, drop);
    CHARTS.forEach(function (spec) {
      var lines = data[spec.key];
      spec.lines.forEach(function (line, i) {
        lines[i].push(line.value(feed, previous));
        lines[i].splice(0, drop);
      });
      charts[spec.key].setData([times].concat(lines));
    });
  }

  /* ---- table ---- */
  (function header() {
    var row = document.createElement("tr");
    var legend = document.getElementById("status-legend");
    COLUMNS.forEach(function (column) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = column.label;
      th.title = column.what;
      row.appendChild(th);
      var dt = document.createElement("dt");
      dt.textContent = column.label;
      var dd = document.createElement("dd");
      dd.textContent = column.what;
      legend.appendChild(dt);
      legend.appendChild(dd);
    });
    thead.appendChild(row);
  }());

  function tableRow(w, row) {
    var tr = document.createElement("tr");
    COLUMNS.forEach(function (column) {
      var td = document.createElement("td");
      td.setAttribute("data-field", column.field);
      td.textContent = String(column.show ? w[column.show] : column.value(w, row));
      if (column.bad && column.bad(w, row)) { td.className = "status-bad"; }
      tr.appendChild(td);
    });
    return tr;
  }

  function fillTable(feed) {
    tbody.textContent = "";
    feed.workers.forEach(function (w) {
      var tr = tableRow(w, {name: String(w.worker), broker: brokerText([w]),
                            state: stateText(w)});
      tr.setAttribute("data-worker", String(w.worker));
      tbody.appendChild(tr);
    });
    tfoot.textContent = "";
    var count = feed.workers.length;
    var accepting = feed.workers.filter(function (w) {
      return stateText(w) === "accepting";
    }).length;
    var totalRow = tableRow(feed.total, {
      name: "total (" + count + (count === 1 ? " worker)" : " workers)"),
      broker: brokerText(feed.workers), state: accepting + "/" + count + " accepting"});
    totalRow.id = "status-total";
    tfoot.appendChild(totalRow);
  }

  /* ---- the feed ---- */
  var previous = null;
  function poll() {
    fetch(FEED, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (response.redirected || !response.ok) {
          throw new Error(response.redirected ? "signed out" : "feed " + response.status);
        }
        return response.json();
      })
      .then(function (feed) {
        if (!feed.running) {
          stateLine.textContent = "No comet server runs in this process (runserver?).";
          return;
        }
        stateLine.textContent = "Worker " + feed.answered_by + " answered at " +
          new Date(feed.time * 1000).toLocaleTimeString() + ".";
        fillTable(feed);
        record(feed, previous);
        previous = feed;
      })
      .catch(function (error) {
        stateLine.textContent = "Feed unavailable: " + error.message;
      })
      .then(function () { window.setTimeout(poll, PERIOD_MS); });
  }
  poll();
})();
