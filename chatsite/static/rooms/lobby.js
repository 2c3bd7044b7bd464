/* The room list: live message counts and people present, from /rooms/events
 * (or the /rooms/updates long-poll: see live.js). */
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

  window.chatLive({
    urls: {sse: $body.attr("data-events-url"), longpoll: $body.attr("data-updates-url")},
    after: cursor,
    eventNames: ["rooms"],
    onEvent: function (name, data) { update(data); },
    decodePoll: function (answer) {
      return {events: [["rooms", answer, null]], cursor: answer.cursor};
    }
  });
}(jQuery));
