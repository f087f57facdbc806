// Browser call tests, run by tests/browser_call.rs (which starts gax and mints tokens with
// `gax token`). Scenarios (GAX_SCENARIO):
// - three-then-four (default): three Chromium pages join one room through the real web client
//   (/?room=R&token=T&autojoin=1); each must decode video and audio from both others; one mutes
//   and the others see it; one leaves and the others see it go (tile and m-lines); a fourth
//   joins later publishing H.264 only, and everyone receives everyone.
// - dev-two-tabs: `gax serve --dev`, two pages without tokens (the page fetches one).
// Env: GAX_URL (http://127.0.0.1:PORT), GAX_ROOM, GAX_TOKENS (JSON {name: token}, optional),
//      CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const base = process.env.GAX_URL;
const room = process.env.GAX_ROOM;
const tokens = JSON.parse(process.env.GAX_TOKENS || "{}");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT_MS = 45_000;

const log = (msg, extra) => console.log(JSON.stringify({ t: new Date().toISOString(), msg, ...extra }));

function fail(msg, extra) {
  log("FAIL: " + msg, extra);
  throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ],
});

const pages = new Map(); // name -> page

async function open(name, extra = "") {
  const ctx = await browser.newContext({ permissions: ["camera", "microphone"] });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") log("console error", { name, text: m.text() });
  });
  page.on("pageerror", (e) => log("page error", { name, text: String(e) }));
  // Without a token (dev mode) the page fetches one from /api/dev/token by itself.
  const token = tokens[name] ? `&token=${encodeURIComponent(tokens[name])}` : "";
  const url = `${base}/?room=${encodeURIComponent(room)}${token}&name=${encodeURIComponent(name)}&autojoin=1${extra}`;
  await page.goto(url);
  pages.set(name, page);
  return page;
}

async function stats(name) {
  return pages.get(name).evaluate(() => window.gax.remoteStats());
}

// Decoding evidence from `name`'s page: per remote name, {frames, width, samples}.
async function decoding(name) {
  const s = await stats(name);
  const out = {};
  for (const p of Object.values(s)) {
    out[p.name] = {
      frames: p.video ? p.video.framesDecoded : 0,
      width: p.video ? p.video.frameWidth : 0,
      samples: p.audio ? p.audio.totalSamplesReceived : 0,
      codec: p.video ? p.video.codec : null,
    };
  }
  return out;
}

// Waits until every watcher decodes video (frames rising, width > 0) and audio from exactly
// the expected others.
async function expectMesh(names) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last = {};
  while (Date.now() < deadline) {
    const first = {};
    for (const n of names) first[n] = await decoding(n);
    await new Promise((r) => setTimeout(r, 1000));
    let ok = true;
    last = {};
    for (const n of names) {
      const now = await decoding(n);
      last[n] = now;
      const others = names.filter((o) => o !== n);
      const seen = Object.keys(now).sort();
      if (JSON.stringify(seen) !== JSON.stringify([...others].sort())) ok = false;
      for (const o of others) {
        const a = first[n][o];
        const b = now[o];
        if (!a || !b || !(b.frames > a.frames) || !(b.width > 0) || !(b.samples > 0)) ok = false;
      }
    }
    if (ok) {
      log("mesh decoding", { names, stats: last });
      return last;
    }
  }
  fail("not every participant decodes every other", { names, stats: last });
}

// Waits until `gone` has no tile on any watcher's page and each watcher's peer connection
// receives exactly `liveTracks` tracks (the leaver's m-lines were stopped by renegotiation).
async function expectGone(watchers, gone, liveTracks) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    let ok = true;
    for (const n of watchers) {
      const names = await pages.get(n).evaluate(() =>
        [...document.querySelectorAll("#grid .tile .label")].map((l) => l.firstChild.textContent),
      );
      if (names.includes(gone)) ok = false;
      const receiving = await pages.get(n).evaluate(
        () => window.gax.state.pc.getTransceivers().filter((t) => !t.stopped && t.currentDirection === "recvonly").length,
      );
      if (receiving !== liveTracks) ok = false;
    }
    if (ok) {
      log("participant gone", { watchers, gone });
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`${gone} still shown after leaving`);
}

async function expectLabel(watchers, who, text) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    let ok = true;
    for (const n of watchers) {
      const labels = await pages.get(n).evaluate(() =>
        [...document.querySelectorAll("#grid .tile .label")].map((l) => l.textContent),
      );
      if (!labels.some((l) => l.startsWith(who) && l.includes(text))) ok = false;
    }
    if (ok) {
      log("label shown", { watchers, who, text });
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`${who}'s tile does not show "${text}"`);
}

// README quick start: `gax serve --dev`, two tabs, no token anywhere. Then a third tab joins
// to watch only (`&media=none`, no camera or microphone) and receives both.
async function devTwoTabs() {
  for (const n of ["alice", "bob"]) await open(n);
  await expectMesh(["alice", "bob"]);
  await open("viewer", "&media=none");
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let seen = {};
  while (Date.now() < deadline) {
    const a = await decoding("viewer");
    await new Promise((r) => setTimeout(r, 1000));
    seen = await decoding("viewer");
    const ok = ["alice", "bob"].every(
      (n) => a[n] && seen[n] && seen[n].frames > a[n].frames && seen[n].width > 0 && seen[n].samples > 0,
    );
    if (ok) {
      log("viewer decodes both", { seen });
      return;
    }
  }
  fail("the watch-only viewer does not decode both publishers", { seen });
}

async function threeThenFour() {
  for (const n of ["alice", "bob", "carol"]) await open(n);
  await expectMesh(["alice", "bob", "carol"]);
  for (const n of ["alice", "bob", "carol"]) {
    const own = await pages.get(n).evaluate(() => window.gax.state.published.map((t) => t.kind).sort());
    if (JSON.stringify(own) !== JSON.stringify(["audio", "video"])) fail(`${n} got track_published for ${own}`);
  }

  // alice mutes her microphone: the others see it on her tile.
  await pages.get("alice").click("#mute-audio");
  await expectLabel(["bob", "carol"], "alice", "mic off");

  // carol leaves with the Leave button.
  await pages.get("carol").click("#leave");
  await expectGone(["alice", "bob"], "carol", 2);
  const afterLeave = await decoding("alice");
  if (afterLeave.carol) fail("alice still has carol's stats after she left", { afterLeave });

  // dave joins late, publishing H.264 only; he receives everyone (VP8) and everyone decodes
  // his H.264.
  await open("dave", "&codec=h264");
  const late = await expectMesh(["alice", "bob", "dave"]);
  for (const n of ["alice", "bob"]) {
    if (!/h264/i.test(late[n].dave.codec || "")) fail(`${n} receives dave as ${late[n].dave.codec}`, { late });
  }
  if (!/vp8/i.test(late.dave.alice.codec || "")) fail(`dave receives alice as ${late.dave.alice.codec}`, { late });
}

const scenarios = { "three-then-four": threeThenFour, "dev-two-tabs": devTwoTabs };
const scenario = scenarios[process.env.GAX_SCENARIO || "three-then-four"];
let exitCode = 0;
try {
  if (!scenario) fail(`unknown GAX_SCENARIO ${process.env.GAX_SCENARIO}`);
  await scenario();
  log("PASS");
} catch (e) {
  exitCode = 1;
  log("error", { error: String(e && e.stack ? e.stack : e) });
} finally {
  await browser.close().catch(() => {});
}
process.exit(exitCode);
