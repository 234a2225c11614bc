// Countdowns: <span data-countdown data-remaining="587" data-expired-text="expired">9:47</span>.
// Counts from the server's figure (not the device clock); at zero it shows the
// expired text and disables the form's approve button (the server refuses too).
"use strict";
for (const el of document.querySelectorAll("[data-countdown]")) {
  const deadline = performance.now() + Number(el.dataset.remaining) * 1000;
  const tick = () => {
    const left = Math.max(0, Math.round((deadline - performance.now()) / 1000));
    if (left === 0) {
      el.textContent = el.dataset.expiredText || "0:00";
      el.classList.add("expired");
      for (const button of document.querySelectorAll("[data-approve]")) button.disabled = true;
      return;
    }
    el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    setTimeout(tick, 250);
  };
  tick();
}
