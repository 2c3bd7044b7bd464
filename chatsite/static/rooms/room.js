/* A room page: show messages once each, in id order; send; typing; presence.
 *
 * Updates come from chatTransport (eventsource.js: the event stream, or the long-poll).
 * The cursor only moves with their answers (never with our own POST answer),
 * so a lower id committed later is never skipped; ids already shown are ignored.
 * Message text is always inserted with .text(), never as HTML. */
(function ($) {
  "use strict";
  var $body = $("body");
  var base = $body.attr("data-base");           // "/rooms/<slug>/"
  var myNick = $body.attr("data-nick") || "";
  var cursor = parseInt($body.attr("data-cursor"), 10) || 0;
  var csrf = $("input[name=csrfmiddlewaretoken]").first().val();
  var $messages = $("#messages");
  var $text = $("#message-text");
  var seen = {};
  var typists = {};                              // nick -> time (ms) the line expires
  var TYPING_MS = 4000, TYPING_SEND_EVERY_MS = 2500;
  var lastTypingSent = 0, sending = false;

  $messages.children("li.message").each(function () {
    seen[$(this).attr("data-id")] = true;
  });

  function formatTime(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return ""; }
    return date.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  }

  function showError(message) {
    $("#error").text(message || "").prop("hidden", !message);
  }

  function messageItem(m) {
    var $li = $("<li>", {"class": "message"}).attr("data-id", m.id);
    if (myNick && m.author === myNick) { $li.addClass("mine"); }
    $("<span>", {"class": "author"}).text(m.author).appendTo($li);
    $("<time>", {"class": "time"}).attr("datetime", m.created)
      .attr("title", m.created).text(formatTime(m.created)).appendTo($li);
    $("<span>", {"class": "text"}).text(m.text).appendTo($li);
    return $li;
  }

  function atBottom() {
    var el = $messages[0];
    return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  }

  function scrollToBottom() {
    $messages.scrollTop($messages[0].scrollHeight);
  }

  /* Insert in id order; false when the id is already shown. */
  function insertMessage(m) {
    var key = String(m.id);
    if (seen[key]) { return false; }
    seen[key] = true;
    var $li = messageItem(m);
    var $after = null;
    $($messages.children("li.message").get().reverse()).each(function () {
      if (parseInt($(this).attr("data-id"), 10) < m.id) { $after = $(this); return false; }
      return true;
    });
    if ($after) { $li.insertAfter($after); } else { $li.prependTo($messages); }
    delete typists[m.author];
    return true;
  }

  function addMessages(list, own) {
    var stick = own || atBottom();
    var added = false;
    $.each(list, function (i, m) { added = insertMessage(m) || added; });
    if (added) { renderTyping(); }
    if (added && stick) { scrollToBottom(); }
  }

  function renderPresence(nicks) {
    var $list = $("#presence").empty();
    $.each(nicks, function (i, nick) {
      var $li = $("<li>").text(nick).appendTo($list);
      if (nick === myNick) { $li.addClass("me"); }
    });
  }

  function renderTyping() {
    var now = Date.now(), nicks = [];
    $.each(typists, function (nick, until) {
      if (until > now) { nicks.push(nick); } else { delete typists[nick]; }
    });
    nicks.sort();
    var line = "";
    if (nicks.length === 1) {
      line = nicks[0] + " is typing…";
    } else if (nicks.length === 2) {
      line = nicks[0] + " and " + nicks[1] + " are typing…";
    } else if (nicks.length > 2) {
      line = nicks[0] + ", " + nicks[1] + " and " + (nicks.length - 2) + " more are typing…";
    }
    $("#typing").text(line);
  }

  function noteTyping(nick) {
    if (!nick || nick === myNick) { return; }
    typists[nick] = Date.now() + TYPING_MS;
    renderTyping();
    setTimeout(renderTyping, TYPING_MS + 100);
  }

  function onLongPoll(data) {
    addMessages(data.messages || [], false);
    if (data.cursor > cursor) { cursor = data.cursor; }
    if (data.presence) { renderPresence(data.presence); }
    $.each(data.typing || [], function (i, nick) { noteTyping(nick); });
  }

  /* Stream events (see eventsource.js); messages carry their ids, duplicates are
   * dropped by insertMessage, and the cursor follows the stream's ids. */
  var streamEvents = {
    ready: function (data) { renderPresence(data.presence || []); },
    messages: function (data, event) {
      addMessages(data.messages || [], false);
      var id = parseInt(event.lastEventId, 10);
      if (id > cursor) { cursor = id; }
    },
    presence: function (data) { renderPresence(data.presence || []); },
    typing: function (data) { noteTyping(data.nick); },
    resync: function () { window.location.reload(); }
  };

  var poller = window.chatTransport({
    eventsUrl: base + "events",
    firstEventMs: parseFloat($body.attr("data-first-event-ms")),
    params: function () { return {after: cursor}; },
    events: streamEvents,
    longPoll: {
      url: base + "updates",
      timeout: parseFloat($body.attr("data-poll-timeout")),
      params: function () { return {after: cursor}; },
      onData: onLongPoll
    }
  });

  function send() {
    if (sending) { return; }
    var text = $text.val();
    sending = true;
    $("#send").prop("disabled", true);
    $.ajax({
      url: base + "messages",
      method: "POST",
      data: {text: text, csrfmiddlewaretoken: csrf},
      dataType: "json"
    }).done(function (m) {
      addMessages([m], true);
      if ($text.val() === text) { $text.val(""); }
      showError("");
    }).fail(function (xhr) {
      var error = xhr.responseJSON && xhr.responseJSON.error;
      if (!error) {
        error = xhr.status ? "Could not send (HTTP " + xhr.status + ")."
                           : "Could not send: the server cannot be reached.";
      }
      showError(error);
    }).always(function () {
      sending = false;
      $("#send").prop("disabled", false);
      $text.trigger("focus");
    });
  }

  $("#message-form").on("submit", function (event) {
    event.preventDefault();
    send();
  });

  $text.on("keydown", function (event) {
    var native = event.originalEvent || {};
    if (event.key === "Enter" && !event.shiftKey && !native.isComposing) {
      event.preventDefault();
      send();
    }
  }).on("input", function () {
    var now = Date.now();
    if (!myNick || !$text.val() || now - lastTypingSent < TYPING_SEND_EVERY_MS) { return; }
    lastTypingSent = now;
    $.post(base + "typing", {csrfmiddlewaretoken: csrf});
  });

  $("#load-older").on("click", function () {
    var $button = $(this).prop("disabled", true);
    var first = $messages.children("li.message").first().attr("data-id");
    $.getJSON(base + "messages", first ? {before: first} : {}).done(function (data) {
      var el = $messages[0], height = el.scrollHeight;
      $.each(data.messages || [], function (i, m) { insertMessage(m); });
      el.scrollTop += el.scrollHeight - height;  // keep the reader's place
      $button.prop("hidden", !data.has_more);
    }).fail(function () {
      showError("Could not load older messages.");
    }).always(function () {
      $button.prop("disabled", false);
    });
  });

  $(window).on("pagehide", function () {
    poller.stop();
    if (myNick && navigator.sendBeacon) {
      var form = new FormData();
      form.append("csrfmiddlewaretoken", csrf);
      navigator.sendBeacon(base + "leave", form);
    }
  }).on("pageshow", function (event) {
    if (event.originalEvent.persisted) { poller.start(); }
  });

  $messages.find("time.time").each(function () {
    var $time = $(this), text = formatTime($time.attr("datetime"));
    if (text) { $time.attr("title", $time.attr("datetime")).text(text); }
  });
  scrollToBottom();
  poller.start();
}(jQuery));
