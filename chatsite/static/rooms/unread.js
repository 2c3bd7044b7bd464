/* Unread counts, kept in this browser (localStorage): for each room, how many of its
 * messages this browser has seen.  A room never opened here shows no count (its whole
 * history is not "unread").  The room page marks its room seen as messages arrive;
 * the sidebar and the lobby's cards show count - seen. */
(function (window) {
  "use strict";
  var PREFIX = "comet-chat.seen.";

  function read(slug) {
    try {
      var value = window.localStorage.getItem(PREFIX + slug);
      return value === null ? null : parseInt(value, 10);
    } catch (e) { return null; }            // storage disabled: no counts
  }

  window.chatUnread = {
    /* Unread messages of a room with `count` messages (0 when never opened here). */
    of: function (slug, count) {
      var seen = read(slug);
      return seen === null ? 0 : Math.max(0, count - seen);
    },
    markSeen: function (slug, count) {
      try { window.localStorage.setItem(PREFIX + slug, String(count)); } catch (e) { /* off */ }
    },
    /* Show n in a badge element (hidden at 0); its title says what it counts. */
    show: function (badge, n) {
      badge.textContent = n > 99 ? "99+" : String(n);
      badge.hidden = n <= 0;
      badge.title = n === 1 ? "1 unread message" : n + " unread messages";
    }
  };
}(window));
