// The dashboard's only script: buttons that POST (with the CSRF token), and live parts.
// A page marks what changes with data-live (and an id); when the live feed (/api/events)
// says something happened, the page is fetched again and those parts are swapped in.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
let refreshing = null;

function flash(text, bad) {
  const box = document.getElementById("flash");
  box.textContent = text;
  box.className = bad ? "bad" : "good";
}

async function post(button) {
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    const response = await fetch(button.dataset.post, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: button.dataset.body || "{}",
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      flash(body.error || response.statusText, true);
      return;
    }
    flash(button.textContent.trim() + ": done " + JSON.stringify(body), false);
    const follow = button.dataset.follow && body[button.dataset.follow];
    if (follow) {
      const link = document.createElement("a");
      link.href = "/tasks/" + follow;
      link.id = "followed";
      link.textContent = " → new task " + follow;
      document.getElementById("flash").appendChild(link);
    }
    refresh();
  } catch (error) {
    flash(String(error), true);
  } finally {
    button.disabled = false;
  }
}

async function refresh() {
  if (refreshing) return;
  refreshing = setTimeout(() => { refreshing = null; }, 300);
  const response = await fetch(location.href, {credentials: "same-origin"});
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const part of document.querySelectorAll("[data-live]")) {
    const next = fresh.getElementById(part.id);
    if (!next || next.innerHTML === part.innerHTML) continue;
    // Keep open what the reader opened (a worker's stats), across the swap.
    const open = [...part.querySelectorAll("details")].map((d) => d.open);
    part.innerHTML = next.innerHTML;
    part.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
  }
  document.body.dataset.refreshed = String(Date.now());
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-post]");
  if (button) {
    event.preventDefault();
    post(button);
  }
});

if (document.querySelector("[data-live]") && window.EventSource) {
  const light = document.getElementById("live");
  const feed = new EventSource("/api/events");
  feed.addEventListener("open", () => { light.className = "live on"; });
  feed.addEventListener("error", () => { light.className = "live"; });
  feed.addEventListener("task", refresh);
  feed.addEventListener("ping", refresh);
}
