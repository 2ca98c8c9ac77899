// awe's own script: small conveniences over pages that work without it.
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");

  function setCookie(name, value) {
    document.cookie = name + "=" + encodeURIComponent(value) + "; Path=/; Max-Age=31536000; SameSite=Lax";
  }

  // Times: relative words, the exact time on hover in UTC or local time.
  function ago(iso) {
    var seconds = (Date.now() - Date.parse(iso)) / 1000;
    var future = seconds < 0, s = Math.abs(seconds), text;
    if (s < 60) text = Math.floor(s) + " s";
    else if (s < 3600) text = Math.floor(s / 60) + " min";
    else if (s < 86400) text = Math.floor(s / 3600) + " h";
    else text = Math.floor(s / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }
  function exact(iso) {
    var when = new Date(iso);
    if (root.dataset.tz === "local") return when.toLocaleString();
    return when.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  function refreshTimes(scope) {
    (scope || document).querySelectorAll("time[datetime]").forEach(function (t) {
      var iso = t.getAttribute("datetime");
      if (!iso) return;
      t.title = exact(iso);
      if (!t.hasAttribute("data-fixed")) t.textContent = ago(iso);
    });
    (scope || document).querySelectorAll("[data-countdown]").forEach(function (t) {
      var left = Math.round((Date.parse(t.getAttribute("data-countdown")) - Date.now()) / 1000);
      t.textContent = left > 0 ? "in " + left + " s" : "now";
    });
  }
  setInterval(function () { refreshTimes(); }, 1000);

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-action]");
    if (!target) return;
    var action = target.getAttribute("data-action");
    if (action === "theme") {
      var next = { auto: "light", light: "dark", dark: "auto" }[root.dataset.theme || "auto"];
      root.dataset.theme = next;
      setCookie("awe_theme", next);
      target.textContent = "Theme: " + next;
    } else if (action === "tz") {
      root.dataset.tz = root.dataset.tz === "local" ? "utc" : "local";
      setCookie("awe_tz", root.dataset.tz);
      target.textContent = root.dataset.tz === "local" ? "Local time" : "UTC";
      refreshTimes();
    } else if (action === "copy") {
      navigator.clipboard.writeText(target.getAttribute("data-copy")).then(function () {
        target.setAttribute("aria-label", "copied");
        target.textContent = "copied";
      });
    } else if (action === "select-all") {
      var form = document.getElementById(target.getAttribute("data-form"));
      form.querySelectorAll("input[name=run_ids], input[name=step_ids]").forEach(function (box) {
        box.checked = target.checked;
      });
    }
  });

  // Live lists pause on request, and while rows are selected (a refresh would drop them).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt.hasAttribute || !elt.hasAttribute("data-pausable")) return;
    var pause = document.getElementById("pause");
    var selected = document.querySelector("input[name=run_ids]:checked, input[name=step_ids]:checked");
    if ((pause && pause.checked) || selected) event.preventDefault();
  });

  // Errors of htmx requests: our own message fragment in the page's message area; anything
  // else (a proxy's error page) only as text.
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("messages");
    if (!box) return;
    var xhr = event.detail.xhr;
    if (xhr.getResponseHeader("X-Awe-Fragment") === "message") box.innerHTML = xhr.responseText;
    else box.textContent = "⚠ The server answered " + xhr.status + "; reload the page.";
  });

  // The event log: follow new lines unless paused; wrap long ones or not.
  document.addEventListener("htmx:afterSwap", function () { refreshTimes(); });
  document.addEventListener("htmx:sseMessage", function () {
    var follow = document.getElementById("follow");
    var log = document.querySelector(".log");
    if (log && follow && follow.checked) log.scrollTop = log.scrollHeight;
    refreshTimes();
  });
  document.addEventListener("change", function (event) {
    if (event.target.id === "wrap") {
      document.querySelectorAll(".log").forEach(function (log) {
        log.classList.toggle("nowrap", !event.target.checked);
      });
    }
  });
  document.addEventListener("DOMContentLoaded", function () { refreshTimes(); });
})();
