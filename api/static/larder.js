// Larder's pages work without this script. It only adds:
// - live states on the request list: rows of requests in progress (data-live-id) are polled
//   through /ui/states until they are final;
// - new requests on the list's newest page: /ui/newer (data-newer) is polled and what it finds
//   goes on top (or, past a page of them, a link to the newest page);
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

  var listPolling = false;

  function pollList() {
    var rows = document.querySelectorAll("tr[data-live-id]");
    if (rows.length === 0) { listPolling = false; return; }
    listPolling = true;
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
        else listPolling = false;
      });
  }

  function cell(row, label, text, className) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    row.appendChild(td);
    return td;
  }

  // the same row the server renders (templates/requests.html), built as text
  function listRow(req) {
    var row = document.createElement("tr");
    if (req.in_progress) row.setAttribute("data-live-id", String(req.id));
    var link = document.createElement("a");
    link.href = "/ui/requests/" + encodeURIComponent(String(req.id));
    link.textContent = String(req.id);
    cell(row, "Id").appendChild(link);
    cell(row, "Repository", req.repo, "repo");
    var code = document.createElement("code");
    code.title = req.git_ref;
    code.textContent = req.short_ref;
    cell(row, "Commit").appendChild(code);
    cell(row, "Package managers", req.pkg_managers);
    var stateCell = cell(row, "State");
    var state = document.createElement("span");
    state.setAttribute("data-state", "");
    setState(state, req.state);
    var reason = document.createElement("div");
    reason.className = "reason";
    reason.setAttribute("data-state-reason", "");
    reason.textContent = req.state_reason;
    stateCell.appendChild(state);
    stateCell.appendChild(reason);
    cell(row, "Created (UTC)", req.created);
    return row;
  }

  function watchNewer(table) {
    var url = new URL(table.getAttribute("data-newer"), window.location.href);
    var body = table.querySelector("tbody");
    function poll() {
      fetch(url.toString(), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (found) {
          if (!found) { setTimeout(poll, POLL_MS * 4); return; }
          if (found.more) {
            // more than a page was made since: the newest page shows them
            document.getElementById("newer-note").hidden = false;
            return;
          }
          if (found.requests.length > 0) {
            var empty = document.getElementById("no-rows");
            if (empty) empty.remove();
            for (var i = found.requests.length - 1; i >= 0; i--) {
              body.insertBefore(listRow(found.requests[i]), body.firstChild);
            }
            url.searchParams.set("after", String(found.requests[0].id));
            if (!listPolling) pollList();
          }
          setTimeout(poll, POLL_MS * 2);
        })
        .catch(function () { setTimeout(poll, POLL_MS * 4); });
    }
    setTimeout(poll, POLL_MS * 2);
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
    var list = document.querySelector("table[data-newer]");
    if (list) watchNewer(list);
    var section = document.querySelector("[data-live-request]");
    if (section) followRequest(section);
    dependencyFilter();
    var log = document.getElementById("log");
    if (log) log.scrollTop = log.scrollHeight;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
