// herdrecord pages: the keyframe strip, the event form's time zone, review shortcuts.
// Reading works without it; recording an event needs it (the form sends the browser's time
// zone). Nothing here talks to another site.
"use strict";

function showDay(button) {
  const panel = document.getElementById("day-frames");
  if (!panel) return;
  for (const other of document.querySelectorAll(".strip .day")) {
    other.classList.remove("chosen");
    other.setAttribute("aria-selected", "false");
  }
  button.classList.add("chosen");
  button.setAttribute("aria-selected", "true");
  document.getElementById("day-title").textContent = button.dataset.day;
  const frames = panel.querySelector(".frames");
  frames.replaceChildren(
    ...JSON.parse(button.dataset.frames).map((url, i) => {
      const img = document.createElement("img");
      img.src = url;
      img.alt = `keyframe ${i + 1} of ${button.dataset.day}`;
      img.width = 192;
      img.height = 144;
      return img;
    })
  );
}

function localNow() {
  const now = new Date();
  now.setMinutes(now.getMinutes() - now.getTimezoneOffset());
  return now.toISOString().slice(0, 16);
}

function reviewKey(event) {
  if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
  let key = event.key.toLowerCase();
  if (event.shiftKey && /^Digit[1-9]$/.test(event.code)) key = "shift+" + event.code.slice(5);
  if (key === "j" || key === "k") {
    const items = [...document.querySelectorAll("#queue li a")];
    const at = items.findIndex((a) => a.parentElement.classList.contains("current"));
    const next = items[at + (key === "j" ? 1 : -1)];
    if (next) window.location = next.href;
    event.preventDefault();
    return;
  }
  const target = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!target) return;
  event.preventDefault();
  target.click();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll(".strip .day")) {
    button.addEventListener("click", () => showDay(button));
  }
  for (const input of document.querySelectorAll("input[data-now]")) {
    if (!input.value) input.value = localNow();
  }
  for (const form of document.querySelectorAll("form.event-form")) {
    // The offset of the date typed in (daylight saving included), not of today.
    form.addEventListener("submit", () => {
      const moment = new Date(form.querySelector("input[data-now]").value);
      const offset = isNaN(moment) ? new Date().getTimezoneOffset() : moment.getTimezoneOffset();
      form.querySelector("input[data-tz-offset]").value = String(offset);
    });
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const select of document.querySelectorAll("select[data-submit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  if (document.getElementById("item")) document.addEventListener("keydown", reviewKey);
});
