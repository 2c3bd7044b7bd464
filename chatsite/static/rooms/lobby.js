/* The room list: live message counts and people present, from /rooms/events
 * (or the /rooms/updates long-poll: see eventsource.js). */
(function ($) {
  "use strict";
  var $body = $("body");
  var cursor = parseInt($body.attr("data-cursor"), 10) || 0;

  function roomItem(room) {
    var $li = $("<li>", {"class": "room"}).attr("data-slug", room.slug);
    $("<a>").attr("href", room.url).text(room.title).appendTo($li);
    var $stats = $("<span>", {"class": "stats"}).appendTo($li);
    $("<span>", {"class": "count"}).appendTo($stats);
    $stats.append(document.createTextNode(" messages · "));
    $("<span>", {"class": "present"}).appendTo($stats);
    $stats.append(document.createTextNode(" here"));
    if (room.description) {
      $("<p>", {"class": "description"}).text(room.description).appendTo($li);
    }
    return $li;
  }

  function update(data) {
    if (data.cursor > cursor) { cursor = data.cursor; }
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
      $li.find(".count").text(room.count);
      $li.find(".present").text(room.present);
    });
  }

  var poller = window.chatTransport({
    eventsUrl: $body.attr("data-events-url"),
    firstEventMs: parseFloat($body.attr("data-first-event-ms")),
    params: function () { return {after: cursor}; },
    events: {rooms: update},
    longPoll: {
      url: $body.attr("data-updates-url"),
      timeout: parseFloat($body.attr("data-poll-timeout")),
      params: function () { return {after: cursor}; },
      onData: update
    }
  });
  poller.start();
  $(window).on("pagehide", function () { poller.stop(); });
  $(window).on("pageshow", function (event) {
    if (event.originalEvent.persisted) { poller.start(); }
  });
}(jQuery));
