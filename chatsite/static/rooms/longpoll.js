/* One long-poll loop per page: re-poll at once after an answer, back off on failure.
 * Failures wait 1 s, 2 s, 4 s ... up to 10 s; the #status element says "Reconnecting…"
 * until an answer arrives again.  A 400 (a cursor the server no longer knows) reloads
 * the page; a 403 or 404 (the room went private, or this visitor was removed) stops and
 * calls options.onGone(xhr) when given.  Callers keep their own cursor in params(). */
(function (window, $) {
  "use strict";

  function setStatus(online) {
    var $status = $("#status");
    if (!$status.length) { return; }
    $status.attr("data-state", online ? "online" : "offline")
      .text(online ? "Online" : "Reconnecting…");
  }

  window.chatLongPoll = function (options) {
    var failures = 0, inFlight = null, timer = null, stopped = true;
    var pollSeconds = options.timeout || 25;

    function schedule(delay) {
      clearTimeout(timer);
      timer = setTimeout(poll, delay);
    }

    function poll() {
      timer = null;
      if (stopped || inFlight) { return; }  // exactly one request at a time
      inFlight = $.ajax({
        url: options.url,
        data: options.params(),
        dataType: "json",
        cache: false,
        timeout: (pollSeconds + 15) * 1000
      }).done(function (data) {
        inFlight = null;
        failures = 0;
        setStatus(true);
        options.onData(data);
        if (!stopped) { schedule(0); }
      }).fail(function (xhr) {
        inFlight = null;
        if (stopped) { return; }
        if (xhr.status === 400) {
          // The cursor is ahead of the site (its database was reset or messages were
          // removed): this page's state is stale, start over from the server's.
          stopped = true;
          window.location.reload();
          return;
        }
        if ((xhr.status === 403 || xhr.status === 404) && options.onGone) {
          // Not (or no longer) allowed here: polling again would not change that.
          stopped = true;
          options.onGone(xhr);
          return;
        }
        setStatus(false);
        var delay = Math.min(10000, 1000 * Math.pow(2, failures));
        failures += 1;
        schedule(delay);
      });
    }

    return {
      start: function () {
        if (!stopped) { return; }
        stopped = false;
        schedule(0);
      },
      stop: function () {
        stopped = true;
        clearTimeout(timer);
        if (inFlight) { inFlight.abort(); inFlight = null; }
      }
    };
  };

}(window, jQuery));
