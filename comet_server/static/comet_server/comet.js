/* comet.js: the browser side of comet_server, one file, no dependencies, no build step.
 *
 *   var client = Comet.connect({
 *     urls: {websocket: "/socket", sse: "/events", longpoll: "/poll"},  // one per transport
 *     after: 0,                       // resume point: the last event id this page shows
 *     params: function () { return {room: "x"}; },   // more query parameters (optional)
 *     onEvent: function (name, data, id) {},         // data is parsed JSON; id may be null
 *     onStatus: function (state, transport) {},      // see STATES below
 *     onRefused: function (status, body) {},         // a long-poll answered 400/403/404/410
 *     firstEventMs: 5000,             // a stream that sends nothing this long is buffered
 *     graceMs: 6000,                  // quiet reconnects shorter than this are not shown
 *     pollSeconds: 25                 // how long the server parks a long-poll
 *   });
 *   client.stop(); client.start(); client.restart(); client.transport(); client.lastId();
 *   client.send(message)  // over a WebSocket while one is open: true; else false (use HTTP)
 *
 * Why it is shaped this way:
 * - Transports are plug-ins (Comet.transports, tried in the order Comet.order): the
 *   first one the browser supports and the page has a URL for is used; one that never
 *   delivers (a proxy buffers the stream) or is refused gives way to the next, for the
 *   rest of the page's life.  The order is WebSocket, then SSE, then long-poll: a
 *   server or proxy that refuses the Upgrade (runserver's 501, a 403, an nginx that
 *   does not pass Upgrade) makes the socket close before it opens, and SSE takes over.
 * - Every event with an id moves the resume point; an id at or below it was delivered
 *   already (a replay after a reconnect) and is dropped, so each event arrives once.
 *   Events without an id (presence, typing...) are not resume points and always pass.
 * - Reconnects back off (1 s, 2 s, 4 s ... up to maxBackoffMs) with jitter, so a
 *   restarted server is not met by every page in the same instant.  An event stream's
 *   ordinary end (its lifetime) is left to the browser, which reconnects after the
 *   server's `retry:` with Last-Event-ID.
 *
 * STATES: "connecting" (no event yet), "live", "reconnecting" (the connection is down
 * for longer than graceMs, or a long-poll failed), "refused", "stopped".
 * Transport contract: Comet.transports[name] = {label, supported(options) -> bool,
 * open(link) -> {close(), send(text) -> bool (optional)}}; `link` gives url(), deliver(name, data, id), live(),
 * trouble(), failed(), refused(status, body), backoff(), settled(), options.
 */
(function (global) {
  "use strict";

  var STATES = ["connecting", "live", "reconnecting", "refused", "stopped"];

  function query(base, params) {
    var parts = [];
    Object.keys(params).forEach(function (key) {
      var value = params[key];
      if (value === undefined || value === null) { return; }
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(String(value)));
    });
    if (!parts.length) { return base; }
    return base + (base.indexOf("?") < 0 ? "?" : "&") + parts.join("&");
  }

  /* Full jitter on an exponential step: somewhere in [delay / 2, delay]. */
  function jittered(failures, options) {
    var delay = Math.min(options.maxBackoffMs, options.backoffMs * Math.pow(2, failures));
    return Math.round(delay / 2 + Math.random() * delay / 2);
  }

  function required(options, name) {
    var value = options[name];
    if (typeof value !== "number" || !(value > 0)) {
      throw new Error("Comet.connect: " + name + " must be a positive number (from the server)");
    }
  }

  /* ---- Server-Sent Events: the browser's EventSource ---------------------------- */
  var sse = {
    label: "SSE",
    streaming: true,
    supported: function () { return typeof global.EventSource === "function"; },
    open: function (link) {
      var source = null, previousId = "", errors = 0, timer = null, closed = false;
      var names = link.options.eventNames;

      function onMessage(event) {
        errors = 0;
        link.settled();
        // The browser keeps lastEventId across events without an id: a changed value
        // means this event carried one.
        var id = null;
        if (event.lastEventId && event.lastEventId !== previousId) {
          id = previousId = event.lastEventId;
        }
        var data;
        try { data = JSON.parse(event.data); } catch (e) { data = event.data; }
        link.live();
        link.deliver(event.type, data, id);
      }

      function connect() {
        timer = null;
        if (closed) { return; }
        previousId = "";
        source = new global.EventSource(link.url(), {withCredentials: false});
        source.onmessage = onMessage;
        names.forEach(function (name) {
          // "error" and "open" are EventSource's own events, never a stream's frames
          // (a WebSocket's "error" messages, say, must not mark a dead stream live).
          if (name !== "error" && name !== "open") { source.addEventListener(name, onMessage); }
        });
        source.onerror = function () {
          if (closed || !source) { return; }
          if (source.readyState === global.EventSource.CLOSED) {
            // A non-200 answer or a wrong type: the browser will not retry, and it
            // cannot tell us the status.  The next transport can.
            drop();
            link.failed();
            return;
          }
          link.trouble();
          errors += 1;
          if (errors >= 2) {
            // The server is not back after the browser's own retry: take over and
            // back off (with jitter) instead of retrying at the stream's fixed pace.
            drop();
            timer = setTimeout(connect, link.backoff());
          }
        };
      }

      function drop() {
        if (source) {
          source.onerror = null;
          source.close();
          source = null;
        }
      }

      connect();
      return {
        close: function () {
          closed = true;
          clearTimeout(timer);
          drop();
        }
      };
    }
  };

  /* ---- WebSocket: server messages are JSON {"event": name, "id": id, "data": data}
   * (a message without "event" is a "message" event); the page may send over it. --- */
  function socketUrl(url) {
    var absolute = new global.URL(url, global.location.href);
    absolute.protocol = absolute.protocol === "https:" ? "wss:" : "ws:";
    return absolute.href;
  }

  var websocket = {
    label: "WebSocket",
    streaming: true,
    supported: function () {
      return typeof global.WebSocket === "function" && typeof global.URL === "function";
    },
    open: function (link) {
      var socket = null, opened = false, everOpened = false, timer = null, closed = false;
      var refusal = null;

      function onMessage(event) {
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        if (frame === null || typeof frame !== "object") { return; }
        if (frame.event === "refused") {
          // The view refused this socket (a browser cannot read a handshake's status,
          // so the server says it in-band, then closes): as a long-poll's 4xx.
          refusal = frame.data || {};
          return;
        }
        link.settled();
        link.live();
        if (typeof frame.event === "string") {
          link.deliver(frame.event, frame.data, frame.id === undefined ? null : frame.id);
        } else {
          link.deliver("message", frame, null);
        }
      }

      function connect() {
        timer = null;
        if (closed) { return; }
        opened = false;
        socket = new global.WebSocket(socketUrl(link.url()));
        socket.onopen = function () { opened = everOpened = true; };
        socket.onmessage = onMessage;
        socket.onclose = function (event) {
          socket = null;
          if (closed) { return; }
          if (refusal !== null) {
            var data = refusal;
            refusal = null;
            link.refused(data.status, data);
            return;
          }
          if (!everOpened) {
            // Refused before it ever opened (a server without WebSocket, a foreign
            // origin, a proxy that drops the Upgrade): the next transport, for good.
            link.failed();
            return;
          }
          var code = event.code, delay;
          if (code === 1000) {
            delay = 0;                     // the socket's lifetime: resume at once
          } else if (code === 1001 || code === 1012) {
            delay = 1500 + Math.random() * 3000;  // a drain: spread the comeback
          } else {
            link.trouble(!opened);
            delay = link.backoff();
          }
          timer = setTimeout(connect, delay);
        };
      }

      connect();
      return {
        close: function () {
          closed = true;
          clearTimeout(timer);
          if (socket) {
            socket.onclose = null;
            socket.close(1000);
            socket = null;
          }
        },
        send: function (text) {
          if (!socket || socket.readyState !== 1) { return false; }
          socket.send(text);
          return true;
        }
      };
    }
  };

  /* ---- Long-poll: one GET at a time, answered when there is news (or after
   * pollSeconds with none); the answer is decoded by options.decodePoll. ---------- */
  function defaultDecode(answer) {
    var events = (answer && answer.events) || [];
    return {
      cursor: answer ? answer.cursor : null,
      events: events.map(function (e) { return [e.event || "message", e.data, e.id]; })
    };
  }

  var longpoll = {
    label: "long-poll",
    streaming: false,
    supported: function () { return typeof global.fetch === "function"; },
    open: function (link) {
      var closed = false, controller = null, timer = null;
      var decode = link.options.decodePoll || defaultDecode;
      var limitMs = (link.options.pollSeconds + 15) * 1000;

      function retry() {
        link.trouble(true);
        timer = setTimeout(poll, link.backoff());
      }

      function poll() {
        timer = null;
        if (closed) { return; }
        controller = typeof AbortController === "function" ? new AbortController() : null;
        var watchdog = setTimeout(function () { if (controller) { controller.abort(); } },
                                  limitMs);
        global.fetch(link.url(), {
          credentials: "same-origin",
          cache: "no-store",
          headers: {"Accept": "application/json"},
          signal: controller ? controller.signal : undefined
        }).then(function (response) {
          return response.text().then(function (text) {
            var body = null;
            try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
            return {status: response.status, body: body};
          });
        }).then(function (answer) {
          clearTimeout(watchdog);
          controller = null;
          if (closed) { return; }
          if (answer.status === 200 && answer.body !== null) {
            link.settled();
            link.live();
            var decoded = decode(answer.body);
            decoded.events.forEach(function (e) { link.deliver(e[0], e[1], e[2]); });
            link.advance(decoded.cursor);
            if (!closed) { timer = setTimeout(poll, 0); }
          } else if ([400, 403, 404, 410].indexOf(answer.status) >= 0) {
            link.refused(answer.status, answer.body);
          } else {
            retry();                     // 5xx, 429, a proxy's error page...
          }
        }, function () {
          clearTimeout(watchdog);
          controller = null;
          if (!closed) { retry(); }     // unreachable, reset, or our own watchdog
        });
      }

      poll();
      return {
        close: function () {
          closed = true;
          clearTimeout(timer);
          if (controller) { controller.abort(); controller = null; }
        }
      };
    }
  };

  /* ---- the client --------------------------------------------------------------- */
  function connect(options) {
    options = Object.assign({
      after: null,
      params: function () { return {}; },
      onEvent: function () {},
      onStatus: function () {},
      onRefused: null,
      eventNames: [],
      backoffMs: 1000,
      maxBackoffMs: 10000,
      order: Comet.order
    }, options);
    ["firstEventMs", "graceMs", "pollSeconds"].forEach(function (name) {
      required(options, name);
    });
    var urls = options.urls || {};
    var candidates = options.order.filter(function (name) {
      var t = Comet.transports[name];
      return t && urls[name] && t.supported(options);
    });
    if (!candidates.length) { throw new Error("Comet.connect: no usable transport"); }

    var lastId = options.after === null || options.after === undefined
      ? null : String(options.after);
    var recent = [];                     // ids delivered lately (non-numeric ids)
    var index = 0, handle = null, running = false, state = null;
    var proven = false, firstTimer = null, graceTimer = null, retryTimer = null, failures = 0;

    function name() { return candidates[index]; }

    function setState(next) {
      if (next === state) { return; }
      state = next;
      options.onStatus(next, name(), Comet.transports[name()].label);
    }

    function seen(id) {
      var n = Number(id), last = Number(lastId);
      if (lastId !== null && id !== "" && !isNaN(n) && !isNaN(last)) { return n <= last; }
      return recent.indexOf(id) >= 0;
    }

    function advance(id) {
      if (id === null || id === undefined || id === "") { return; }
      id = String(id);
      if (lastId === null || !seen(id)) { lastId = id; }
    }

    var link = {
      options: options,
      url: function () {
        var params = lastId === null ? {} : {after: lastId};
        return query(urls[name()], Object.assign(params, options.params()));
      },
      deliver: function (eventName, data, id) {
        if (!running) { return; }
        if (id !== null && id !== undefined && id !== "") {
          id = String(id);
          if (seen(id)) { return; }      // a replay of what this page has
          lastId = id;
          recent.push(id);
          if (recent.length > 256) { recent.shift(); }
        } else {
          id = null;
        }
        options.onEvent(eventName, data, id);
      },
      advance: advance,
      live: function () {
        if (!proven) {
          proven = true;
          clearTimeout(firstTimer);
          firstTimer = null;
        }
        clearTimeout(graceTimer);
        graceTimer = null;
        setState("live");
      },
      /* The connection dropped; say so now (`now`) or after graceMs if not back. */
      trouble: function (now) {
        if (now) { setState("reconnecting"); return; }
        if (graceTimer !== null) { return; }
        graceTimer = setTimeout(function () {
          graceTimer = null;
          if (running) { setState("reconnecting"); }
        }, options.graceMs);
      },
      settled: function () { failures = 0; },
      backoff: function () {
        var delay = jittered(failures, options);
        failures += 1;
        return delay;
      },
      failed: function () { next(); },
      refused: function (status, body) {
        close();
        running = false;
        setState("refused");
        if (options.onRefused) {
          options.onRefused(status, body);
        } else if (status === 400) {
          global.location.reload();      // the resume point is unknown: start over
        }
      }
    };

    function close() {
      clearTimeout(retryTimer);
      clearTimeout(firstTimer);
      clearTimeout(graceTimer);
      firstTimer = graceTimer = null;
      if (handle) { handle.close(); handle = null; }
    }

    function open() {
      var transport = Comet.transports[name()];
      if (transport.streaming && !proven && index < candidates.length - 1) {
        firstTimer = setTimeout(next, options.firstEventMs);
      }
      handle = transport.open(link);
      if (!transport.streaming) { link.live(); }  // a parked request is listening
    }

    /* This transport does not work here: the next one, for the rest of the page. */
    function next() {
      close();
      var last = index === candidates.length - 1;
      if (!last) {
        index += 1;
        proven = false;
        failures = 0;
        state = null;
        setState("connecting");
      } else {
        link.trouble(true);             // nothing left to try: the same one, later
      }
      if (!running) { return; }
      if (last) { retryTimer = setTimeout(open, link.backoff()); } else { open(); }
    }

    var client = {
      start: function () {
        if (running) { return; }
        running = true;
        setState("connecting");
        open();
      },
      stop: function () {
        running = false;
        close();
        setState("stopped");
      },
      /* Close and connect again (the server re-checks access, for instance). */
      restart: function () {
        client.stop();
        client.start();
      },
      transport: function () { return name(); },
      lastId: function () { return lastId; },
      /* Send a message over the open WebSocket (objects as JSON): false when there is
       * none, and the page sends it another way (an HTTP POST). */
      send: function (message) {
        if (!handle || typeof handle.send !== "function") { return false; }
        return handle.send(typeof message === "string" ? message : JSON.stringify(message));
      }
    };
    if (options.start !== false) { client.start(); }
    return client;
  }

  var Comet = global.Comet || {};
  Comet.transports = Object.assign(Comet.transports || {},
                                   {websocket: websocket, sse: sse, longpoll: longpoll});
  Comet.order = Comet.order || ["websocket", "sse", "longpoll"];
  Comet.connect = connect;
  Comet.STATES = STATES;
  global.Comet = Comet;
}(window));
