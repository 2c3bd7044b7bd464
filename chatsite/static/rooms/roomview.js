/* What a chat page is expected to do beyond showing messages: clickable links, a date
 * divider when the day changes, consecutive messages of one author grouped under one
 * author line, initials avatars, full date-times on hover, a "new messages" cue and an
 * unread count in the title while the reader is scrolled up or in another tab, and a
 * character counter near the limit.  room.js calls these; nothing here is HTML from a
 * message: every user string goes in as a text node or an attribute. */
(function (window, $) {
  "use strict";

  var LINK = /\bhttps?:\/\/[^\s<>"']+/gi;
  var TRAILING = /[.,;:!?)\]}'"]+$/;   // punctuation after a link is not part of it

  /* Put `text` into `el` as text nodes, with http(s) URLs as <a> elements. */
  function setText(el, text) {
    el.textContent = "";
    var last = 0, match;
    LINK.lastIndex = 0;
    while ((match = LINK.exec(text)) !== null) {
      var url = match[0].replace(TRAILING, "");
      if (!url) { continue; }
      var parsed;
      try { parsed = new URL(url); } catch (e) { continue; }
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") { continue; }
      el.appendChild(document.createTextNode(text.slice(last, match.index)));
      var a = document.createElement("a");
      a.href = parsed.href;
      a.rel = "noopener nofollow";
      a.target = "_blank";
      a.textContent = url;
      el.appendChild(a);
      last = match.index + url.length;
      LINK.lastIndex = last;
    }
    el.appendChild(document.createTextNode(text.slice(last)));
  }

  function dateOf(li) {
    var d = new Date($(li).find("time.time").first().attr("datetime"));
    return isNaN(d.getTime()) ? null : d;
  }

  function dayKey(d) { return d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate(); }

  var GROUP_MS = 5 * 60 * 1000;  // a pause longer than this starts a new group

  /* "Anna Lee" -> "AL", "bob" -> "B", "x_y-z" -> "XY": what an avatar shows. */
  function initials(name) {
    var words = String(name).split(/[\s._-]+/).filter(function (w) { return w; });
    if (!words.length) { return "?"; }
    var first = Array.from(words[0])[0] || "";
    var second = words.length > 1 ? (Array.from(words[words.length - 1])[0] || "") : "";
    return (first + second).toUpperCase();
  }

  /* A stable colour per name, dark enough for white initials (AA). */
  var PALETTE = ["#b4234f", "#8e3db8", "#4b4fc4", "#1f6fb2", "#0f7a6c", "#2f7d32",
                 "#8a6100", "#b04a17", "#5b6473", "#a3306f"];
  function colorFor(name) {
    var hash = 0;
    for (var i = 0; i < name.length; i += 1) { hash = (hash * 31 + name.charCodeAt(i)) | 0; }
    return PALETTE[Math.abs(hash) % PALETTE.length];
  }

  function paintAvatar(el, name) {
    el.setAttribute("data-initials", initials(name));
    el.style.setProperty("--avatar", colorFor(name));
  }

  /* Day dividers, groups and avatars (redrawn after each change): one divider before
   * the first message of each day; a message by the author of the one just above,
   * within GROUP_MS, is "continued" (no second author line). */
  function renderDividers($messages) {
    $messages.children("li.day-divider").remove();
    var previous = null, last = null;
    $messages.children("li.message").each(function () {
      var d = dateOf(this), author = this.getAttribute("data-author") || "";
      var avatar = this.querySelector(".avatar");
      if (avatar && !avatar.hasAttribute("data-initials")) { paintAvatar(avatar, author); }
      var key = d ? dayKey(d) : previous;
      if (d && key !== previous) {
        $("<li>", {"class": "day-divider", role: "separator"})
          .text(d.toLocaleDateString([], {weekday: "long", year: "numeric",
                                          month: "long", day: "numeric"}))
          .insertBefore(this);
        last = null;
      }
      var continued = last !== null && last.author === author && d && last.date &&
        d - last.date < GROUP_MS && d >= last.date;
      this.classList.toggle("continued", Boolean(continued));
      last = {author: author, date: d};
      previous = key;
    });
  }

  function fullDateTime(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString([], {dateStyle: "full",
                                                            timeStyle: "medium"});
  }

  /* "New messages ↓" while scrolled up, "(N) " in the title while unseen. */
  function Unread($messages, $cue) {
    var title = document.title, count = 0;
    function atBottom() {
      var el = $messages[0];
      return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    }
    function render() {
      document.title = count ? "(" + count + ") " + title : title;
      $cue.prop("hidden", !count || atBottom());
    }
    function seen() {
      if (!document.hidden && atBottom()) { count = 0; }
      render();
    }
    $messages.on("scroll", seen);
    $(document).on("visibilitychange", seen);
    $cue.on("click", function () {
      $messages.scrollTop($messages[0].scrollHeight);
      seen();
    });
    return {
      /* `added` messages arrived from others; the page stuck to the bottom or not. */
      arrived: function (added) {
        if (added && (document.hidden || !atBottom())) { count += added; }
        seen();
      }
    };
  }

  /* "1,850 / 2,000" once the text nears the limit; marked past it. */
  function counter($text, $out, limit) {
    function update() {
      var n = $text.val().length;
      $out.text(n >= limit * 0.8 ? n + " / " + limit : "")
        .toggleClass("over", n > limit);
    }
    $text.on("input", update);
    update();
    return update;
  }

  window.chatView = {setText: setText, renderDividers: renderDividers, initials: initials,
                     paintAvatar: paintAvatar, colorFor: colorFor,
                     fullDateTime: fullDateTime, Unread: Unread, counter: counter};
}(window, jQuery));
