// The watch page's status line, error line and the overlay over the video.

import { $, show } from "../dom.js";

export function setStatus(text, state) { const s = $("w-status"); s.textContent = text; s.dataset.state = state || "idle"; }
export function showError(text) { const e = $("w-error"); e.textContent = text || ""; show(e, !!text); }
export function overlay(text) { const o = $("w-overlay"); o.textContent = text || ""; show(o, !!text); }
