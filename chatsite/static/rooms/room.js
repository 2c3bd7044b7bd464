/* A room page: show messages once each, in id order; send; typing; presence.
 *
 * Updates come from comet.js through live.js (the event stream, or the long-poll).
 * The resume point only moves with their answers (never with our own POST answer),
 * so a lower id committed later is never skipped; ids already shown are ignored.
 * Message text is always inserted with .text(), never as HTML. */
(function ($) {
  "use strict";
  var $body = $("body");
  var base = $body.attr("data-base");           // "/rooms/<slug>/"
  var myNick = $body.attr("data-nick") || "";
  var cursor = parseInt($body.attr("data-cursor"), 10) || 0;
  var changesCursor = parseInt($body.attr("data-changes-cursor"), 10) || 0;
  var canModerate = $body.attr("data-can-moderate") === "1";
  var csrf = $("input[name=csrfmiddlewaretoken]").first().val();
  var $messages = $("#messages");
  var $text = $("#message-text");
  var seen = {};
  var typists = {};                              // nick -> time (ms) the line expires
  var TYPING_MS = parseFloat($body.attr("data-typing-shown-ms"));
  var TYPING_SEND_EVERY_MS = parseFloat($body.attr("data-typing-every-ms"));
  var lastTypingSent = 0, sending = false;
  var unread = window.chatView.Unread($messages, $("#new-messages"));
  var updateCounter = window.chatView.counter(
    $text, $("#char-count"), parseInt($body.attr("data-max-text"), 10));

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
    var $li = $("<li>", {"class": "message"}).attr("data-id", m.id).attr("data-author", m.author);
    if (myNick && m.author === myNick) { $li.addClass("mine"); }
    var avatar = $("<span>", {"class": "avatar", "aria-hidden": "true"}).appendTo($li)[0];
    window.chatView.paintAvatar(avatar, m.author);
    var $meta = $("<div>", {"class": "meta"}).appendTo($li);
    $("<span>", {"class": "author"}).text(m.author).appendTo($meta);
    $("<time>", {"class": "time"}).attr("datetime", m.created)
      .attr("title", window.chatView.fullDateTime(m.created)).text(formatTime(m.created))
      .appendTo($meta);
    if (m.edited) { $("<span>", {"class": "edited"}).text("(edited)").appendTo($meta); }
    var text = $("<span>", {"class": "text"}).appendTo($li)[0];
    window.chatView.setText(text, m.text);  // text nodes, and links as <a> elements
    addModerationControls($li);
    return $li;
  }

  /* Moderators (staff, the room's owner) get a delete button on every message. */
  function addModerationControls($li) {
    if (!canModerate || $li.find("button.delete").length) { return; }
    $("<button>", {"class": "delete", type: "button", title: "Delete this message"})
      .text("Delete").insertBefore($li.children(".text"));
  }

  $messages.on("click", "button.delete", function () {
    var id = $(this).closest("li.message").attr("data-id");
    $.ajax({url: base + "messages/" + id + "/delete", method: "POST",
            data: {csrfmiddlewaretoken: csrf}, dataType: "json"})
      .done(function () { removeMessage(id); })
      .fail(function (xhr) { showError(errorText(xhr, "Could not delete")); });
  });

  function removeMessage(id) {
    seen[String(id)] = true;
    $messages.children("li.message").filter(function () {
      return $(this).attr("data-id") === String(id);
    }).remove();
    window.chatView.renderDividers($messages);
    $("#empty-room").prop("hidden", $messages.children("li.message").length > 0);
  }

  /* Moderation changes ({id, type: "deleted"|"edited", message}) from the long-poll:
   * a deleted message leaves the page, an edited one shows its new text. */
  function applyChanges(changes) {
    $.each(changes || [], function (i, change) {
      if (change.id > changesCursor) { changesCursor = change.id; }
      var m = change.message || {};
      if (change.type === CHANGES.deleted || m.deleted) {
        removeMessage(m.id);
      } else if (change.type === CHANGES.edited) {
        var $li = $messages.children("li.message").filter(function () {
          return $(this).attr("data-id") === String(m.id);
        });
        if ($li.length) { $li.replaceWith(messageItem(m)); }
      }
    });
  }

  /* This visitor was removed from the private room: stop, and say so. */
  function revoked(message) {
    poller.stop();
    $("#message-form, #change-nick-form").prop("hidden", true);
    $("#status").attr("data-state", "offline").text("Removed");
    showError(message || "You are no longer a member of this room.");
  }

  function errorText(xhr, what) {
    var error = xhr.responseJSON && xhr.responseJSON.error;
    if (error) { return error; }
    return xhr.status ? what + " (HTTP " + xhr.status + ")."
                      : what + ": the server cannot be reached.";
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
    if (m.deleted) { removeMessage(m.id); return false; }  // a tombstone
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
    var added = false, fromOthers = 0;
    $.each(list, function (i, m) {
      if (insertMessage(m)) {
        added = true;
        if (!own && m.author !== myNick) { fromOthers += 1; }
      }
    });
    if (added) {
      renderTyping();
      window.chatView.renderDividers($messages);
      $("#empty-room").prop("hidden", true);
    }
    if (added && stick) { scrollToBottom(); }
    unread.arrived(fromOthers);
  }

  var byName = new Intl.Collator(undefined, {sensitivity: "base"}).compare;

  /* Who is here, sorted as people read ("anna" before "Eve"), with initials. */
  function renderPresence(nicks) {
    var $list = $("#presence").empty();
    $.each(nicks.slice().sort(byName), function (i, nick) {
      var $li = $("<li>").text(nick).appendTo($list);
      window.chatView.paintAvatar($li[0], nick);
      if (nick === myNick) { $li.addClass("me"); }
    });
    $("#present-count").text(nicks.length);
  }

  function renderTyping() {
    var now = Date.now(), nicks = [];
    $.each(typists, function (nick, until) {
      if (until > now) { nicks.push(nick); } else { delete typists[nick]; }
    });
    nicks.sort(byName);
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
    if (data.revoked) { revoked(data.error); return; }
    applyChanges(data.changes);
    addMessages(data.messages || [], false);
    if (data.presence) { renderPresence(data.presence); }
    $.each(data.typing || [], function (i, nick) { noteTyping(nick); });
  }

  var membershipChanged = false;

  /* Stream events and long-poll answers (see live.js); messages carry their ids,
   * duplicates are dropped by insertMessage, comet.js keeps the resume point. */
  var FRAMES = window.chatEvents.frames, CHANGES = window.chatEvents.changes;
  var CLIENT = window.chatEvents.client;
  var POLL = "poll";                     // the long-poll's answer, as one event (below)
  var SOCKET_ERROR = "error";            // a refusal of a post sent over the WebSocket
  var handlers = {};
  handlers[POLL] = onLongPoll;
  handlers[FRAMES.ready] = function (data) { renderPresence(data.presence || []); };
  handlers[FRAMES.messages] = function (data) {
    var list = data.messages || [], mine = false;
    if (sentOverSocket !== null) {
      mine = list.some(function (m) {
        return m.author === myNick && m.text === sentOverSocket.trim();
      });
      if (mine) { sentOverSocket = null; }  // our socket post is in: follow it down
    }
    addMessages(list, mine);
  };
  handlers[FRAMES.changes] = function (data) { applyChanges(data.changes); };
  handlers[FRAMES.presence] = function (data) { renderPresence(data.presence || []); };
  handlers[FRAMES.typing] = function (data) { noteTyping(data.nick); };
  // The members of this private room changed: connect again, so the server checks
  // this visitor's access (a removed member is refused, and the long-poll says so).
  handlers[FRAMES.membership] = function () {
    membershipChanged = true;
    poller.restart();
  };
  handlers[FRAMES.resync] = function () { window.location.reload(); };
  // A post or typing signal sent over the WebSocket was refused (the same rules as an
  // HTTP post): say why, give the text back, hold Send for a 429's retry_after.
  handlers[SOCKET_ERROR] = function (data) { socketRefused(data || {}); };

  var poller = window.chatLive({
    urls: {websocket: window.chatSocketUrl(base + "socket"), sse: base + "events",
           longpoll: base + "updates"},
    after: cursor,
    params: function () { return {changes: changesCursor}; },
    // Not "error" for EventSource: that name is its own connection-error event.
    eventNames: Object.keys(handlers).filter(function (name) {
      return name !== SOCKET_ERROR;
    }),
    onEvent: function (name, data) {
      if (handlers.hasOwnProperty(name)) { handlers[name](data); }
    },
    // The long-poll answers with everything at once: one "poll" event.
    decodePoll: function (answer) {
      return {events: [[POLL, answer, null]], cursor: answer.cursor};
    },
    onRefused: function (status, body) {
      if (status === 400) {
        // The cursor is ahead of the site (its database was reset or messages were
        // removed): this page's state is stale, start over from the server's.
        window.location.reload();
        return;
      }
      // Refused right after a membership change: this visitor was removed.
      revoked(membershipChanged ? "" : body && body.error);
    }
  });

  /* Over the WebSocket when one is open: no request, the message comes back to every
   * page (this one included) as a "messages" event; a refusal as an "error" event. */
  var sentOverSocket = null;             // the text of the last post sent over the socket

  function socketRefused(data) {
    showError(data.error || "Could not send");
    if (sentOverSocket !== null && !$text.val()) {
      $text.val(sentOverSocket);
      updateCounter();
      fitText();
    }
    sentOverSocket = null;
    if (data.status === 429 && data.retry_after > 0) {
      holdFor(data.retry_after);
    }
  }

  function send() {
    if (sending || heldUntil > Date.now()) { return; }
    var text = $text.val();
    if (myNick && text.trim() && poller.send({type: CLIENT.post, text: text})) {
      sentOverSocket = text;
      $text.val("");
      updateCounter();
      fitText();
      showError("");
      $text.trigger("focus");
      return;
    }
    sending = true;
    $("#send").prop("disabled", true);
    $.ajax({
      url: base + "messages",
      method: "POST",
      data: {text: text, csrfmiddlewaretoken: csrf},
      dataType: "json"
    }).done(function (m) {
      addMessages([m], true);
      if ($text.val() === text) { $text.val(""); updateCounter(); fitText(); }
      showError("");
    }).fail(function (xhr) {
      showError(errorText(xhr, "Could not send"));
      holdSending(xhr);
    }).always(function () {
      sending = false;
      $("#send").prop("disabled", heldUntil > Date.now());
      $text.trigger("focus");
    });
  }

  /* A 429 says how long to wait (Retry-After): keep Send off until then. */
  var heldUntil = 0;
  function holdSending(xhr) {
    var seconds = parseInt(xhr.getResponseHeader("Retry-After"), 10);
    if (xhr.status !== 429 || !(seconds > 0)) { return; }
    holdFor(seconds);
  }

  function holdFor(seconds) {
    $("#send").prop("disabled", true);
    heldUntil = Date.now() + seconds * 1000;
    setTimeout(function () {
      heldUntil = 0;
      $("#send").prop("disabled", false);
      showError("");
    }, seconds * 1000);
  }

  $("#message-form").on("submit", function (event) {
    event.preventDefault();
    send();
  });

  /* The box grows with its text (up to its CSS max-height), then scrolls. */
  function fitText() {
    var el = $text[0];
    if (!el) { return; }
    var stick = atBottom();
    el.style.height = "auto";
    el.style.height = el.scrollHeight + 2 + "px";
    if (stick) { scrollToBottom(); }
  }

  $text.on("keydown", function (event) {
    var native = event.originalEvent || {};
    if (event.key === "Enter" && !event.shiftKey && !native.isComposing) {
      event.preventDefault();
      send();
    }
  }).on("input", fitText).on("input", function () {
    var now = Date.now();
    if (!myNick || !$text.val() || now - lastTypingSent < TYPING_SEND_EVERY_MS) { return; }
    lastTypingSent = now;
    if (!poller.send({type: CLIENT.typing})) {
      $.post(base + "typing", {csrfmiddlewaretoken: csrf});
    }
  });

  $("#load-older").on("click", function () {
    var $button = $(this).prop("disabled", true);
    var first = $messages.children("li.message").first().attr("data-id");
    $.getJSON(base + "messages", first ? {before: first} : {}).done(function (data) {
      var el = $messages[0], height = el.scrollHeight;
      $.each(data.messages || [], function (i, m) { insertMessage(m); });
      window.chatView.renderDividers($messages);
      el.scrollTop += el.scrollHeight - height;  // keep the reader's place
      $button.prop("hidden", !data.has_more);
    }).fail(function () {
      showError("Could not load older messages.");
    }).always(function () {
      $button.prop("disabled", false);
    });
  });

  $(window).on("pagehide", function () {
    if (myNick && navigator.sendBeacon) {
      var form = new FormData();
      form.append("csrfmiddlewaretoken", csrf);
      navigator.sendBeacon(base + "leave", form);
    }
  });

  renderPresence($("#presence li").map(function () { return $(this).text(); }).get());
  $messages.children("li.message").each(function () {
    addModerationControls($(this));
    var text = $(this).children(".text")[0];
    if (text) { window.chatView.setText(text, text.textContent); }
  });
  $messages.find("time.time").each(function () {
    var $time = $(this), text = formatTime($time.attr("datetime"));
    if (text) {
      $time.attr("title", window.chatView.fullDateTime($time.attr("datetime"))).text(text);
    }
  });
  window.chatView.renderDividers($messages);
  scrollToBottom();
}(jQuery));
