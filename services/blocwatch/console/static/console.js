// blocwatch console: live updates (Server-Sent Events), the display name, and action forms.
// No framework, no build. HTML arrives rendered and escaped by the server; this script never
// builds markup from data, and the Content-Security-Policy allows only this file to run.
"use strict";
(function () {
  const NAME_KEY = "blocwatch.displayName";
  const nameInput = document.getElementById("who-name");
  const flash = document.getElementById("flash");
  const conn = document.getElementById("conn");
  const serverUser = document.body.dataset.user || "";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  // The display name is entered once per browser (localStorage); a proxy-authenticated user
  // is fixed by the server and shown read-only.
  if (serverUser) {
    nameInput.value = serverUser;
    nameInput.readOnly = true;
  } else {
    nameInput.value = localStorage.getItem(NAME_KEY) || "";
    nameInput.addEventListener("change", function () {
      localStorage.setItem(NAME_KEY, nameInput.value.trim());
    });
  }

  function say(text, isError) {
    flash.textContent = text;
    flash.className = isError ? "error" : "ok";
  }

  function displayName() {
    let name = nameInput.value.trim();
    if (!name) {
      name = (window.prompt("Your name (shown with your actions):") || "").trim();
      if (name) {
        nameInput.value = name;
        localStorage.setItem(NAME_KEY, name);
      }
    }
    return name;
  }

  // Actions are sent with fetch (the CSRF token travels in a header); the page stays open.
  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (!form.classList || !form.classList.contains("action")) return;
    event.preventDefault();
    const who = serverUser || displayName();
    if (!who) {
      say("Enter your name first.", true);
      return;
    }
    const body = new FormData(form);
    body.set("who", who);
    try {
      // getAttribute: a field named "action" shadows form.action (DOM named properties)
      const response = await fetch(form.getAttribute("action"), {
        method: "POST",
        body: body,
        headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
        credentials: "same-origin",
      });
      const result = await response.json();
      if (!response.ok) throw new Error(result.error || response.statusText);
      say(result.message, false);
      form.querySelectorAll('input[name="comment"]').forEach(function (i) { i.value = ""; });
    } catch (error) {
      say("Failed: " + error.message, true);
    }
  });

  const live = document.getElementById("live");
  if (live && live.dataset.stream && window.EventSource) {
    const source = new EventSource(live.dataset.stream);
    source.addEventListener("open", function () {
      conn.textContent = "live";
      conn.className = "conn live";
    });
    source.addEventListener("error", function () {
      conn.textContent = "reconnecting…";
      conn.className = "conn down";
    });
    // The fragment is server-rendered and escaped; replacing it keeps the forms (outside).
    source.addEventListener("board", function (event) {
      live.innerHTML = event.data;
    });
  }
})();
