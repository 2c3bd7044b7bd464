/* The chat's use of comet.js (comet_server/static/comet_server/comet.js): its settings
 * come from the <body>'s data attributes (set by the server: page_settings.py), and
 * its state shows in #status ("Online" / "Reconnecting…") and #transport ("live (SSE)").
 *
 * window.chatLive(options) returns the comet.js client; options are those of
 * Comet.connect (urls, after, params, onEvent, decodePoll, onRefused, eventNames),
 * and quiet: true for a second client whose state the page does not show. */
(function (window, $) {
  "use strict";

  function number(name) {
    return parseFloat($("body").attr("data-" + name));
  }

  function showState(state, transport, label) {
    var $status = $("#status");
    if (state === "live") {
      $status.attr("data-state", "online").text("Online");
      $("#transport").attr("data-transport", transport).text("live (" + label + ")");
    } else if (state === "reconnecting") {
      $status.attr("data-state", "offline").text("Reconnecting…");
    } else if (state === "connecting") {
      $("#transport").attr("data-transport", "").text("connecting…");
    }
  }

  /* The WebSocket URL, unless the server turned WebSockets off (CHAT_WEBSOCKET). */
  window.chatSocketUrl = function (url) {
    return $("body").attr("data-websocket") === "1" ? url : null;
  };

  /* The names of the streams' events and of the moderation changes, from the server
   * (chatsite/rooms/events.py): {frames: {ready: "ready", ...}, changes: {...}}. */
  window.chatEvents = JSON.parse($("body").attr("data-events"));

  window.chatLive = function (options) {
    var client = window.Comet.connect($.extend({
      firstEventMs: number("first-event-ms"),
      graceMs: number("grace-ms"),
      pollSeconds: number("poll-seconds"),
      onStatus: options.quiet ? function () {} : showState,
      start: false
    }, options));
    $(window).on("pagehide", function () { client.stop(); })
      .on("pageshow", function (event) {
        if (event.originalEvent.persisted) { client.start(); }
      });
    client.start();
    return client;
  };
}(window, jQuery));
