/* The lobby: a card per room with live counts (people online, messages, last
 * activity, unread here), from /rooms/events (or the /rooms/updates long-poll: see
 * live.js).  Every room string goes in with .text(). */
(function ($) {
  "use strict";
  var $body = $("body");
  var unread = window.chatUnread;
  var relative = new Intl.RelativeTimeFormat(undefined, {numeric: "auto"});
  var STEPS = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"],
               [12, "month"], [Infinity, "year"]];

  /* "5 minutes ago", "yesterday"... for an ISO date-time. */
  function ago(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ""; }
    var amount = (d.getTime() - Date.now()) / 1000;
    for (var i = 0; i < STEPS.length; i += 1) {
      if (Math.abs(amount) < STEPS[i][0]) {
        return "active " + relative.format(Math.round(amount), STEPS[i][1]);
      }
      amount /= STEPS[i][0];
    }
    return "";
  }

  function roomItem(room) {
    var $li = $("<li>", {"class": "room"}).attr("data-slug", room.slug);
    $("<a>", {"class": "room-link"}).attr("href", room.url).text(room.title).appendTo($li);
    if (room.private) { $("<span>", {"class": "private-badge"}).text("private").appendTo($li); }
    if (room.description) {
      $("<p>", {"class": "description"}).text(room.description).appendTo($li);
    }
    var $stats = $("<span>", {"class": "stats"}).appendTo($li);
    var $online = $("<span>", {"class": "online"}).appendTo($stats);
    $("<span>", {"class": "present"}).appendTo($online);
    $online.append(document.createTextNode(" online"));
    var $count = $("<span>").appendTo($stats);
    $("<span>", {"class": "count"}).appendTo($count);
    $count.append(document.createTextNode(" "));
    $("<span>", {"class": "count-word"}).appendTo($count);
    $("<span>", {"class": "last"}).appendTo($stats);
    $("<span>", {"class": "unread"}).prop("hidden", true).appendTo($li);
    return $li;
  }

  function showLast($li, iso) {
    var $last = $li.find(".last").empty();
    if (iso) {
      $("<time>").attr("datetime", iso).attr("title", new Date(iso).toLocaleString())
        .text(ago(iso)).appendTo($last);
    } else {
      $last.text("no messages yet");
    }
  }

  function paint($li, room) {
    $li.attr("data-count", room.count);
    $li.find(".count").text(room.count);
    $li.find(".count-word").text(room.count === 1 ? "message" : "messages");
    $li.find(".present").text(room.present);
    $li.find(".online").toggleClass("some", room.present > 0);
    showLast($li, room.last);
    unread.show($li.find(".unread")[0], unread.of(room.slug, room.count));
  }

  function update(data) {
    var $list = $("#rooms");
    $.each(data.rooms || [], function (index, room) {
      var $li = $list.children("li.room").filter(function () {
        return $(this).attr("data-slug") === room.slug;
      });
      if (!$li.length) {
        $list.children("li.empty").remove();
        $li = roomItem(room);
        var $at = $list.children("li.room").eq(index);
        if ($at.length) { $li.insertBefore($at); } else { $li.appendTo($list); }
      }
      paint($li, room);
    });
  }

  /* The page as served: relative times and unread counts. */
  function refresh() {
    $("#rooms li.room").each(function () {
      var $li = $(this), iso = $li.find(".last time").attr("datetime");
      if (iso) { showLast($li, iso); }
      var slug = $li.attr("data-slug"), count = parseInt($li.attr("data-count"), 10) || 0;
      unread.show($li.find(".unread")[0], unread.of(slug, count));
    });
  }
  refresh();
  setInterval(refresh, 30 * 1000);        // "active 1 minute ago" ages with the page

  window.chatLive({
    urls: {websocket: window.chatSocketUrl($body.attr("data-socket-url")),
           sse: $body.attr("data-events-url"),
           longpoll: $body.attr("data-updates-url")},
    after: parseInt($body.attr("data-cursor"), 10) || 0,
    eventNames: [window.chatEvents.frames.rooms],
    onEvent: function (name, data) { update(data); },
    decodePoll: function (answer) {
      return {events: [[window.chatEvents.frames.rooms, answer, null]], cursor: answer.cursor};
    }
  });
}(jQuery));
