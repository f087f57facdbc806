// Headless Chromium for the e2e scenarios (Debian's, at CHROMIUM or /usr/bin/chromium), with
// the flags that work on this kind of machine (../shared/RECIPES.md): no sandbox or GPU, no
// background networking (the network is closed), autoplay without a gesture. `extra` adds
// scenario flags (fake camera and microphone, loopback peer connections).
import { chromium } from "playwright-core";

export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      ...extra,
    ],
  });
}
