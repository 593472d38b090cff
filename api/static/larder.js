// Larder's pages work without this script. It only adds:
// - live states on the request list: rows of requests in progress (data-live-id) are polled
//   through /ui/states until they are final;
// - a request page that follows its request (data-live-request): state, reason and log tail from
//   /ui/requests/{id}/live, and a reload once the request is final (to show what it fetched);
// - the dependency filter as one types.
// Everything it writes goes in as text (textContent), never as markup.
(function () {
  "use strict";
  var POLL_MS = 1500;

  function stateClass(state) {
    return ["complete", "failed", "in_progress", "stale"].indexOf(state) >= 0
      ? "state-" + state : "state-unknown";
  }

  function setState(el, state) {
    el.textContent = state;
    el.className = "state " + stateClass(state);
  }

  function pollList() {
    var rows = document.querySelectorAll("tr[data-live-id]");
    if (rows.length === 0) return;
    var ids = [];
    rows.forEach(function (row) { ids.push(row.getAttribute("data-live-id")); });
    fetch("/ui/states?ids=" + encodeURIComponent(ids.join(",")), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return;
        body.requests.forEach(function (req) {
          var row = document.querySelector('tr[data-live-id="' + String(req.id) + '"]');
          if (!row) return;
          var state = row.querySelector("[data-state]");
          var reason = row.querySelector("[data-state-reason]");
          if (state) setState(state, req.state);
          if (reason) reason.textContent = req.state_reason;
          if (req.state !== "in_progress") row.removeAttribute("data-live-id");
        });
      })
      .catch(function () {})
      .then(function () {
        if (document.querySelector("tr[data-live-id]")) setTimeout(pollList, POLL_MS);
      });
  }

  function followRequest(section) {
    var id = section.getAttribute("data-live-request");
    var note = document.getElementById("live-note");
    if (note) note.hidden = false;
    function poll() {
      fetch("/ui/requests/" + encodeURIComponent(id) + "/live", { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (!body) { setTimeout(poll, POLL_MS * 2); return; }
          var state = document.getElementById("state");
          var reason = document.getElementById("state-reason");
          var log = document.getElementById("log");
          if (state) setState(state, body.state);
          if (reason) reason.textContent = body.state_reason;
          if (log) {
            var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
            log.textContent = body.log_tail;
            if (atEnd) log.scrollTop = log.scrollHeight;
          }
          if (body.state === "in_progress") setTimeout(poll, POLL_MS);
          else window.location.reload();
        })
        .catch(function () { setTimeout(poll, POLL_MS * 2); });
    }
    setTimeout(poll, POLL_MS);
  }

  function dependencyFilter() {
    var input = document.getElementById("dep-filter");
    if (!input) return;
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      document.querySelectorAll("tr[data-dep]").forEach(function (row) {
        row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) < 0;
      });
    });
  }

  function start() {
    pollList();
    var section = document.querySelector("[data-live-request]");
    if (section) followRequest(section);
    dependencyFilter();
    var log = document.getElementById("log");
    if (log) log.scrollTop = log.scrollHeight;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
