// The messenger's error banner (hides itself after 10 s), and `ui()`: wraps a UI handler so
// its failures are shown instead of thrown.

import { $ } from "../dom.js";

let errorTimer = null;
export function showError(text) {
  $("m-error").firstElementChild.textContent = text || "";
  $("m-error").hidden = !text;
  clearTimeout(errorTimer);
  if (text) errorTimer = setTimeout(() => showError(""), 10_000);
}

export const report = (e) => {
  if (e && e.code === "signed_out") return;
  console.warn(e);
  showError((e && e.message) || String(e));
};

// UI handlers never throw: failures are shown.
// (Synchronous up to the first await, so preventDefault() still counts.)
export const ui = (fn) => (...a) => {
  try { const r = fn(...a); if (r && r.catch) r.catch(report); } catch (e) { report(e); }
};

export function setConn(text, state) {
  $("m-conn").textContent = text;
  $("m-conn").dataset.state = state;
}
