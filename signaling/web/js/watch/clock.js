// The server's clock as this page estimates it: NTP-style `time` pings, the lowest round trip
// of the last SYNC_WINDOW samples gives the offset. Server time = local monotonic time + offset.

const SYNC_WINDOW = 16; // samples kept; the lowest round trip gives the offset

export const localNow = () => performance.timeOrigin + performance.now();
export const clock = { offset: 0, rtt: Infinity, samples: [], synced: false };
export const serverNow = () => localNow() + clock.offset;

// A `time` reply to a ping sent at local time t0; returns the best sample (or null).
export function onTimeReply(t0, server) {
  const t1 = localNow();
  const rtt = t1 - t0;
  if (!(rtt >= 0)) return null;
  clock.samples.push({ rtt, offset: server + rtt / 2 - t1 });
  if (clock.samples.length > SYNC_WINDOW) clock.samples.shift();
  const best = clock.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
  clock.offset = best.offset;
  clock.rtt = best.rtt;
  return best;
}
