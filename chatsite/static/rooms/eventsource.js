/* How a page gets its live updates: one EventSource, or the long-poll as a fallback.
 *
 * window.chatTransport(options) returns {start, stop, name}, the same interface as
 * window.chatLongPoll, so a page does not care which one runs:
 *   options.eventsUrl    the stream (/rooms/<slug>/events, /rooms/events)
 *   options.events       {eventName: function (data, event)} for the stream's events
 *   options.firstEventMs how long to wait for the stream's first event (default 5000)
 *   options.longPoll     the options of window.chatLongPoll (url, timeout, params, onData)
 *   options.params()     {after: cursor}: where the stream starts (the browser then
 *                        resumes by itself with Last-Event-ID)
 * It falls back to the long-poll, for the rest of the page's life, when the browser
 * has no EventSource, when no event arrives within firstEventMs (something between
 * us and the server buffers the stream), or when the stream is refused (a non-200:
 * the long-poll then reloads the page on a stale cursor, or retries).
 * #status says Online / Reconnecting… (not for the few seconds of an ordinary
 * reconnect); #transport says which transport is live. */
(function (window, $) {
  "use strict";

  function setStatus(online) {
    $("#status").attr("data-state", online ? "online" : "offline")
      .text(online ? "Online" : "Reconnecting…");
  }

  function setTransport(name) {
    $("#transport").attr("data-transport", name)
      .text(name === "sse" ? "live (SSE)" : "live (long-poll)");
  }

  var RECONNECT_GRACE_MS = 6000;

  window.chatTransport = function (options) {
    var source = null, poller = null, firstTimer = null, offlineTimer = null, stopped = true;
    var firstEventMs = options.firstEventMs > 0 ? options.firstEventMs : 5000;
    var api = {name: window.EventSource ? "sse" : "longpoll"};

    function closeSource() {
      clearTimeout(firstTimer);
      clearTimeout(offlineTimer);
      firstTimer = offlineTimer = null;
      if (source) { source.close(); source = null; }
    }

    function fallBack() {
      closeSource();
      api.name = "longpoll";
      setTransport("longpoll");
      if (!poller) { poller = window.chatLongPoll(options.longPoll); }
      if (!stopped) { poller.start(); }
    }

    function url() {
      var params = options.params();
      return options.eventsUrl + (options.eventsUrl.indexOf("?") < 0 ? "?" : "&") + $.param(params);
    }

    function listen(name, handler) {
      source.addEventListener(name, function (event) {
        if (firstTimer !== null) {     // the first event: nothing buffers the stream
          clearTimeout(firstTimer);
          firstTimer = null;
          setTransport("sse");
        }
        clearTimeout(offlineTimer);
        offlineTimer = null;
        setStatus(true);
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        handler(data, event);
      });
    }

    function open() {
      source = new window.EventSource(url());
      $.each(options.events, listen);
      source.onerror = function () {
        if (!source) { return; }
        if (source.readyState === window.EventSource.CLOSED) {
          fallBack();                  // refused (400, 404, 5xx...): the long-poll copes
        } else if (offlineTimer === null) {
          // The browser reconnects by itself after the stream's retry (3 s), as it does
          // whenever a stream reaches its lifetime: say "Reconnecting…" only when the
          // stream is not back (its first event) soon after that.
          offlineTimer = setTimeout(function () {
            offlineTimer = null;
            setStatus(false);
          }, RECONNECT_GRACE_MS);
        }
      };
      firstTimer = setTimeout(fallBack, firstEventMs);
    }

    api.start = function () {
      if (!stopped) { return; }
      stopped = false;
      if (api.name === "longpoll") {
        setTransport("longpoll");
        if (!poller) { poller = window.chatLongPoll(options.longPoll); }
        poller.start();
        return;
      }
      open();
    };

    api.stop = function () {
      stopped = true;
      closeSource();
      if (poller) { poller.stop(); }
    };

    return api;
  };

}(window, jQuery));
