/* The live status page: poll the JSON feed every 2 s, fill the table, draw the last
   10 minutes with uPlot.  Every value goes in through textContent, never as HTML. */
(function () {
  "use strict";

  var root = document.getElementById("status");
  if (!root || typeof uPlot === "undefined") {
    return;
  }
  var FEED = root.getAttribute("data-feed");
  var PERIOD_MS = 2000;
  var KEEP_SECONDS = 600;
  var stateLine = document.getElementById("status-state");
  var tbody = document.querySelector("#status-workers tbody");
  var tfoot = document.querySelector("#status-workers tfoot");
  var previous = null; // the last feed: rates and lag are differences from it
  var series = { t: [], connections: [], parked: [], streams: [], deliveries: [], lag: [] };

  function widthOf(el) {
    return Math.max(260, (el.parentNode.clientWidth || 340) - 16);
  }

  function chart(id, lines) {
    var el = document.getElementById(id);
    var opts = {
      width: widthOf(el),
      height: 160,
      cursor: { show: false },
      legend: { show: lines.length > 1, live: false },
      axes: [{}, { size: 56 }],
      series: [{}].concat(lines.map(function (line) {
        return { label: line.label, stroke: line.color, width: 2, spanGaps: true };
      })),
    };
    var empty = [[]].concat(lines.map(function () { return []; }));
    return new uPlot(opts, empty, el);
  }

  var charts = {
    connections: chart("chart-connections", [{ label: "connections", color: "#1f77b4" }]),
    parked: chart("chart-parked", [{ label: "parked", color: "#2ca02c" },
                                   { label: "streams", color: "#ff7f0e" }]),
    deliveries: chart("chart-deliveries", [{ label: "deliveries/s", color: "#9467bd" }]),
    lag: chart("chart-lag", [{ label: "lag p99 ms", color: "#d62728" }]),
  };
  window.statusCharts = charts; // for the functional tests: charts hold data
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (name) {
      var plot = charts[name];
      plot.setSize({ width: widthOf(plot.root.parentNode), height: 160 });
    });
  });

  function p99(now, before) {
    // The bucket bound below which 99% of the probes since the last poll fell.
    if (!now) {
      return null;
    }
    var counts = now.counts.map(function (c, i) {
      return before ? c - (before.counts[i] || 0) : c;
    });
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    if (total <= 0) {
      return null;
    }
    var running = 0;
    for (var i = 0; i < counts.length; i++) {
      running += counts[i];
      if (running >= total * 0.99) {
        var bounds = now.bounds;
        return i < bounds.length ? bounds[i] : bounds[bounds.length - 1];
      }
    }
    return null;
  }

  function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }
  function ms(seconds) { return seconds === null || seconds === undefined ? "–"
                                : (seconds * 1000).toFixed(1) + " ms"; }
  function sum(obj) {
    var n = 0;
    Object.keys(obj || {}).forEach(function (k) { n += obj[k]; });
    return n;
  }

  function brokerText(workers) {
    var withBroker = workers.filter(function (w) { return w.broker; });
    if (!withBroker.length) {
      return "none";
    }
    var up = withBroker.filter(function (w) { return w.broker.connected; }).length;
    return up === withBroker.length ? "connected" : up + "/" + withBroker.length + " connected";
  }

  function stateText(w) {
    if (w.stopping) { return "draining"; }
    return w.accepting ? "accepting" : "paused";
  }

  var FIELDS = ["worker", "connections", "parked", "streams", "waiters", "published",
                "deliveries", "requests", "5xx", "undelivered", "rejected", "lag",
                "threads", "queued", "rss", "fds", "broker", "state"];

  function cells(row, values, bad) {
    values.forEach(function (value, i) {
      var td = document.createElement("td");
      td.setAttribute("data-field", FIELDS[i]);
      td.textContent = String(value);
      if (bad[i]) { td.className = "status-bad"; }
      row.appendChild(td);
    });
  }

  function rowValues(w, name, lagSeconds, broker, state) {
    return [name, w.connections, w.parked, w.streaming, w.waiters, w.published_total,
            w.delivered_total, w.requests_total, (w.responses || {})["5xx"] || 0,
            w.not_delivered, sum(w.cap_hits), ms(lagSeconds),
            (w.threads_busy || 0) + "/" + (w.threads || 0),
            (w.queued || 0) + (w.queue_refused_total ? " (" + w.queue_refused_total +
                               " refused)" : ""),
            mib(w.rss_bytes), w.open_fds, broker, state];
  }

  function fillTable(feed) {
    tbody.textContent = "";
    feed.workers.forEach(function (w) {
      var row = document.createElement("tr");
      row.setAttribute("data-worker", String(w.worker));
      var broker = brokerText([w]);
      var state = stateText(w);
      cells(row, rowValues(w, String(w.worker), w.loop_lag_last_s, broker, state),
            { 16: broker !== "connected" && broker !== "none", 17: state !== "accepting" });
      tbody.appendChild(row);
    });
    tfoot.textContent = "";
    var total = document.createElement("tr");
    total.id = "status-total";
    var count = feed.workers.length;
    var accepting = feed.workers.filter(function (w) {
      return stateText(w) === "accepting";
    }).length;
    cells(total, rowValues(feed.total, "total (" + count + (count === 1 ? " worker)" : " workers)"),
                           feed.total.loop_lag_last_s, brokerText(feed.workers),
                           accepting + "/" + count + " accepting"), {});
    tfoot.appendChild(total);
  }

  function record(feed) {
    var t = feed.time;
    var total = feed.total;
    var rate = null;
    var lag = null;
    if (previous && previous.running) {
      var dt = t - previous.time;
      if (dt > 0) {
        rate = Math.max(0, (total.delivered_total - previous.total.delivered_total) / dt);
      }
      var q = p99(total.loop_lag_seconds, previous.total.loop_lag_seconds);
      lag = q === null ? null : q * 1000;
    }
    series.t.push(t);
    series.connections.push(total.connections);
    series.parked.push(total.parked);
    series.streams.push(total.streaming);
    series.deliveries.push(rate);
    series.lag.push(lag);
    while (series.t.length && series.t[0] < t - KEEP_SECONDS) {
      Object.keys(series).forEach(function (k) { series[k].shift(); });
    }
    charts.connections.setData([series.t, series.connections]);
    charts.parked.setData([series.t, series.parked, series.streams]);
    charts.deliveries.setData([series.t, series.deliveries]);
    charts.lag.setData([series.t, series.lag]);
  }

  function poll() {
    fetch(FEED, { credentials: "same-origin", headers: { Accept: "application/json" } })
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
        stateLine.textContent = "Answered by worker " + feed.answered_by + " at " +
          new Date(feed.time * 1000).toLocaleTimeString() + ".";
        fillTable(feed);
        record(feed);
        previous = feed;
      })
      .catch(function (error) {
        stateLine.textContent = "Feed unavailable: " + error.message;
      })
      .then(function () { window.setTimeout(poll, PERIOD_MS); });
  }

  poll();
})();
