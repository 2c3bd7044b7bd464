/* The room page's frame: the rooms sidebar with live unread counts (the lobby's
 * stream, followed while the page is visible), the drawers on small screens (rooms on
 * the left, people on the right) and the keys that close them. */
(function (window, $) {
  "use strict";
  var $body = $("body");
  var $page = $(".room-page");
  var here = $body.attr("data-room");
  var $nav = $("#room-nav");
  var unread = window.chatUnread;

  /* ---- drawers ---- */
  function closeDrawers() {
    $page.removeClass("sidebar-open people-open");
    $("#toggle-rooms, #toggle-people").attr("aria-expanded", "false");
    $("#scrim").prop("hidden", true);
  }
  function toggle(which, $button) {
    var open = !$page.hasClass(which);
    closeDrawers();
    if (open) {
      $page.addClass(which);
      $button.attr("aria-expanded", "true");
      $("#scrim").prop("hidden", false);
    }
  }
  $("#toggle-rooms").on("click", function () { toggle("sidebar-open", $(this)); });
  $("#toggle-people").on("click", function () { toggle("people-open", $(this)); });
  $("#scrim").on("click", closeDrawers);
  $(document).on("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    if ($page.is(".sidebar-open, .people-open")) { closeDrawers(); return; }
    var $edit = $("details.change-nick[open]");
    if ($edit.length) {                  // Esc cancels a name change
      $edit.prop("open", false).find("input[name=nick]").val($("#my-nick").text());
      $("#message-text").trigger("focus");
    }
  });

  /* ---- unread counts ---- */
  function render() {
    var any = false;
    $nav.children("li.nav-room").each(function () {
      var slug = this.getAttribute("data-slug");
      var count = parseInt(this.getAttribute("data-count"), 10) || 0;
      if (slug === here) {
        if (!document.hidden) { unread.markSeen(slug, count); }
        return;
      }
      var n = unread.of(slug, count);
      unread.show(this.querySelector(".unread"), n);
      this.classList.toggle("has-unread", n > 0);
      any = any || n > 0;
    });
    $("#toggle-rooms .unread-dot").prop("hidden", !any);
  }

  var SVG = "http://www.w3.org/2000/svg";
  function lockIcon() {                  // the template's lock, drawn with the DOM
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "lock");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("width", "12");
    svg.setAttribute("height", "12");
    var body = document.createElementNS(SVG, "rect");
    [["x", 3], ["y", 7], ["width", 10], ["height", 8], ["rx", 1.5]].forEach(function (a) {
      body.setAttribute(a[0], a[1]);
    });
    var shackle = document.createElementNS(SVG, "path");
    shackle.setAttribute("d", "M5 7V5a3 3 0 0 1 6 0v2");
    shackle.setAttribute("fill", "none");
    shackle.setAttribute("stroke", "currentColor");
    shackle.setAttribute("stroke-width", "1.6");
    svg.appendChild(body);
    svg.appendChild(shackle);
    return svg;
  }

  function navItem(room) {
    var $li = $("<li>", {"class": "nav-room"}).attr("data-slug", room.slug);
    var $a = $("<a>").attr("href", room.url).appendTo($li);
    var hash = $("<span>", {"class": "nav-hash", "aria-hidden": "true"}).appendTo($a)[0];
    if (room.private) { hash.appendChild(lockIcon()); } else { hash.textContent = "#"; }
    $("<span>", {"class": "nav-title"}).text(room.title).appendTo($a);
    $("<span>", {"class": "unread"}).prop("hidden", true).appendTo($a);
    return $li;
  }

  function update(data) {
    $.each(data.rooms || [], function (index, room) {
      var $li = $nav.children("li.nav-room").filter(function () {
        return this.getAttribute("data-slug") === room.slug;
      });
      if (!$li.length) {
        $li = navItem(room);
        var $at = $nav.children("li.nav-room").eq(index);
        if ($at.length) { $li.insertBefore($at); } else { $li.appendTo($nav); }
      }
      $li.attr("data-count", room.count);
    });
    render();
  }

  var rooms = window.chatLive({
    urls: {sse: $body.attr("data-rooms-events-url"),
           longpoll: $body.attr("data-rooms-updates-url")},
    after: parseInt($body.attr("data-rooms-cursor"), 10) || 0,
    eventNames: [window.chatEvents.frames.rooms],
    quiet: true,                         // #status and #transport are the room's
    onEvent: function (name, data) { update(data); },
    decodePoll: function (answer) {
      return {events: [[window.chatEvents.frames.rooms, answer, null]], cursor: answer.cursor};
    }
  });
  // A hidden tab follows only its room: browsers allow few connections per server.
  $(document).on("visibilitychange", function () {
    if (document.hidden) { rooms.stop(); } else { rooms.start(); render(); }
  });
  if (document.hidden) { rooms.stop(); }
  render();
}(window, jQuery));
