/* Read /demo/ as it streams and show each chunk (as text) the moment it arrives. */
(function () {
  "use strict";
  var url = document.currentScript.getAttribute("data-url");
  var list = document.getElementById("demo-chunks");
  var status = document.getElementById("demo-status");
  var again = document.getElementById("demo-again");

  function show(chunk) {
    chunk.split(/<br\s*\/?>/).forEach(function (line) {
      line = line.trim();
      if (!line) { return; }
      var li = document.createElement("li");
      li.textContent = line + " (" + new Date().toLocaleTimeString() + ")";
      list.appendChild(li);
    });
  }

  function run() {
    list.textContent = "";
    again.disabled = true;
    status.textContent = "Streaming…";
    fetch(url, {cache: "no-store"}).then(function (response) {
      var reader = response.body.getReader(), decoder = new TextDecoder();
      function next() {
        return reader.read().then(function (part) {
          if (part.done) { status.textContent = "Done: the response is complete."; return; }
          show(decoder.decode(part.value, {stream: true}));
          return next();
        });
      }
      return next();
    }).catch(function () {
      status.textContent = "The demo could not be loaded.";
    }).then(function () { again.disabled = false; });
  }

  again.addEventListener("click", run);
  run();
}());
