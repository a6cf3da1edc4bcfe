// batchjobs console: live refresh of the #live block, node clicks, confirmed actions.
// No library: a poll once a second fetches the block's fragment and swaps it in when it
// changed; handlers are delegated from the document, so they survive the swap.
"use strict";
(function () {
  const POLL_MS = 1000;
  let selected = null;

  function showAttempts() {
    document.querySelectorAll("[data-attempts-of]").forEach(function (el) {
      el.hidden = el.getAttribute("data-attempts-of") !== selected;
    });
    document.querySelectorAll(".node").forEach(function (el) {
      el.classList.toggle("selected", el.getAttribute("data-task") === selected);
    });
  }

  function poll(live) {
    const url = live.getAttribute("data-live");
    let last = live.innerHTML;
    let busy = false;
    let version = null;  // the ETag of what is shown: 304 while nothing changed
    setInterval(function () {
      if (busy || document.hidden) { return; }
      busy = true;
      const headers = {"X-Fragment": "1"};
      if (version) { headers["If-None-Match"] = version; }
      fetch(url, {headers: headers, credentials: "same-origin", cache: "no-store"})
        .then(function (r) {
          if (r.status === 401) { window.location = "/login"; return null; }
          if (!r.ok) { return null; }
          version = r.headers.get("ETag");
          return r.text();
        })
        .then(function (html) {
          if (html !== null && html !== last) {
            live.innerHTML = html;
            last = live.innerHTML;
            showAttempts();
          }
        })
        .catch(function () { /* the next poll tries again */ })
        .finally(function () { busy = false; });
    }, POLL_MS);
  }

  document.addEventListener("click", function (event) {
    const node = event.target.closest(".node");
    if (node) {
      selected = node.getAttribute("data-task");
      showAttempts();
    }
  });
  document.addEventListener("submit", function (event) {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    const live = document.getElementById("live");
    if (live && live.getAttribute("data-live")) { poll(live); }
  });
})();
