// Keyward console: copy buttons. The pages work without this file; it only reveals and wires the buttons.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("copy-status");
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = source.textContent;
      let copied = false;
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch (_) {
        // No clipboard API (not a secure context): select the text so Ctrl+C copies it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      const label = button.firstChild;
      const before = label.textContent;
      label.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
      if (status) status.textContent = copied ? "Copied to the clipboard." : "Selected; press Ctrl+C to copy.";
      setTimeout(() => { label.textContent = before; }, 2000);
    });
  }
});
