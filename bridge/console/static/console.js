// The bridge console's only script: live refresh of the delivery list, and copy buttons. No framework, no build.
"use strict";

function liveRefresh() {
  const rows = document.getElementById("rows");
  const toggle = document.getElementById("live");
  if (!rows || !rows.dataset.live || !toggle) return;
  setInterval(async () => {
    if (!toggle.checked || document.hidden) return;
    try {
      const reply = await fetch(rows.dataset.live, {credentials: "same-origin", headers: {"Accept": "text/html"}});
      if (reply.ok && !reply.redirected) rows.innerHTML = await reply.text();
    } catch (error) {
      // The bridge restarting or the network dropping: try again on the next tick.
    }
  }, 5000);
}

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (error) {
        // Without clipboard access (plain http on another host), select the text for Ctrl-C.
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl-C";
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => { liveRefresh(); copyButtons(); });
