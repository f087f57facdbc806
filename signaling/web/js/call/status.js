// The call page's status line and its error line.

import { $ } from "../dom.js";

export function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind || "idle";
}

export function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}
