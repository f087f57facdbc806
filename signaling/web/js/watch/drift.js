// When to correct the player: a pure decision over the last drift samples (seconds, > 0: ahead
// of the room). Small sustained drift nudges the playback rate, large sustained drift seeks;
// one jittery sample (a late timer, a slow frame) never moves the player.

export const DRIFT_EVERY_MS = 200; // drift check period
export const DRIFT_SUSTAIN = 4;    // consecutive samples beyond a threshold before acting
const DRIFT_SMALL = 0.02;          // s: beyond this, nudge the rate
const DRIFT_OK = 0.008;            // s: within this, play at the room's rate again
export const DRIFT_LARGE = 0.6;    // s: beyond this, seek
const NUDGE_MAX = 0.1;             // at most ±10% rate nudge

// What to do about the last DRIFT_SUSTAIN drift samples: act only on sustained drift, every
// sample beyond the threshold, on the same side.
// Returns {act: "wait"|"seek"|"nudge"|"reset"|"hold", factor?}.
export function decideDrift(samples) {
  if (samples.length < DRIFT_SUSTAIN) return { act: "wait" };
  const sorted = [...samples].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const side = Math.sign(median);
  if (samples.every((x) => Math.abs(x) > DRIFT_LARGE && Math.sign(x) === side)) return { act: "seek" };
  if (samples.every((x) => Math.abs(x) > DRIFT_SMALL && Math.sign(x) === side)) {
    const nudge = Math.max(-NUDGE_MAX, Math.min(NUDGE_MAX, median * 0.5));
    return { act: "nudge", factor: 1 - nudge };
  }
  if (samples.every((x) => Math.abs(x) < DRIFT_OK)) return { act: "reset" };
  return { act: "hold" };
}
