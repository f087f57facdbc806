//! Active speaker detection for one room, from the audio-level header extension (RFC 6464)
//! that browsers put on every Opus packet. Sans-IO: fed levels and the time, it says when the
//! room's active speaker changes.
//!
//! Per packet it only updates a smoothed level; the decision runs every [`SPEAKER_INTERVAL`]. A
//! new speaker must be louder than the current one by [`SWITCH_MARGIN_DB`] (or the current one
//! must have gone quiet), so two people talking at once do not make the highlight flicker.

use std::time::{Duration, Instant};

use crate::ParticipantId;

/// How often the room's speaker is re-evaluated.
pub const SPEAKER_INTERVAL: Duration = Duration::from_millis(300);

/// Smoothed level (dBov) above which someone counts as speaking.
pub const SPEAKING_DBOV: f32 = -50.0;

/// How much louder (dB) a challenger must be to take over from a current speaker.
pub const SWITCH_MARGIN_DB: f32 = 3.0;

/// A level not refreshed for this long counts as silence (the track paused or muted).
const STALE: Duration = Duration::from_millis(1000);

/// Smoothing factor per packet (about 50 packets/s for Opus at 20 ms).
const ALPHA: f32 = 0.3;

#[derive(Debug, Clone, Copy)]
struct Level {
    who: ParticipantId,
    smoothed: f32,
    updated: Instant,
}

/// The speaker state of one room.
#[derive(Debug, Clone, Default)]
pub struct SpeakerDetector {
    levels: Vec<Level>,
    current: Option<ParticipantId>,
    last_eval: Option<Instant>,
}

impl SpeakerDetector {
    /// Records one packet's audio level (`dbov` from -127 = silence to 0 = loudest).
    #[inline]
    pub fn on_level(&mut self, now: Instant, who: ParticipantId, dbov: i8) {
        let v = f32::from(dbov.clamp(-127, 0));
        match self.levels.iter_mut().find(|l| l.who == who) {
            Some(l) => {
                l.smoothed += ALPHA * (v - l.smoothed);
                l.updated = now;
            }
            None => self.levels.push(Level {
                who,
                smoothed: v,
                updated: now,
            }),
        }
    }

    /// The current speaker.
    pub fn current(&self) -> Option<ParticipantId> {
        self.current
    }

    fn level_of(&self, now: Instant, who: ParticipantId) -> f32 {
        self.levels
            .iter()
            .find(|l| l.who == who)
            .filter(|l| now.saturating_duration_since(l.updated) < STALE)
            .map_or(-127.0, |l| l.smoothed)
    }

    /// Re-evaluates when due. Returns `Some(new speaker)` when it changes (`Some(None)`: nobody
    /// speaks any more).
    pub fn tick(&mut self, now: Instant) -> Option<Option<ParticipantId>> {
        if let Some(t) = self.last_eval {
            if now.saturating_duration_since(t) < SPEAKER_INTERVAL {
                return None;
            }
        }
        self.last_eval = Some(now);
        let loudest = self
            .levels
            .iter()
            .filter(|l| now.saturating_duration_since(l.updated) < STALE)
            .max_by(|a, b| a.smoothed.total_cmp(&b.smoothed))
            .filter(|l| l.smoothed > SPEAKING_DBOV)
            .map(|l| (l.who, l.smoothed));
        let next = match (self.current, loudest) {
            (_, None) => None,
            (None, Some((who, _))) => Some(who),
            (Some(cur), Some((who, level))) => {
                let cur_level = self.level_of(now, cur);
                if who != cur
                    && (cur_level <= SPEAKING_DBOV || level > cur_level + SWITCH_MARGIN_DB)
                {
                    Some(who)
                } else {
                    Some(cur)
                }
            }
        };
        if next != self.current {
            self.current = next;
            return Some(next);
        }
        None
    }

    /// Forgets a participant who left. Returns `Some(None)` if it was the speaker.
    pub fn remove(&mut self, who: ParticipantId) -> Option<Option<ParticipantId>> {
        self.levels.retain(|l| l.who != who);
        if self.current == Some(who) {
            self.current = None;
            return Some(None);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut SpeakerDetector, t: Instant, who: u64, dbov: i8, n: usize) {
        for _ in 0..n {
            d.on_level(t, ParticipantId(who), dbov);
        }
    }

    #[test]
    fn the_loudest_speaker_wins_with_a_margin() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::default();
        feed(&mut d, t0, 1, -30, 10);
        feed(&mut d, t0, 2, -127, 10);
        assert_eq!(d.tick(t0), Some(Some(ParticipantId(1))));
        assert_eq!(d.tick(t0), None, "not due again yet");
        // 2 starts talking slightly louder: within the margin, 1 stays.
        let t1 = t0 + SPEAKER_INTERVAL;
        feed(&mut d, t1, 2, -29, 20);
        feed(&mut d, t1, 1, -30, 20);
        assert_eq!(d.tick(t1), None);
        // 2 is clearly louder: takes over.
        let t2 = t1 + SPEAKER_INTERVAL;
        feed(&mut d, t2, 2, -10, 20);
        feed(&mut d, t2, 1, -30, 20);
        assert_eq!(d.tick(t2), Some(Some(ParticipantId(2))));
    }

    #[test]
    fn silence_staleness_and_leaving_clear_the_speaker() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::default();
        feed(&mut d, t0, 1, -20, 10);
        assert_eq!(d.tick(t0), Some(Some(ParticipantId(1))));
        // No packets for over a second (muted track): nobody speaks.
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(d.tick(t1), Some(None));
        // Quiet levels never make a speaker.
        feed(&mut d, t1, 3, -90, 30);
        assert_eq!(d.tick(t1 + SPEAKER_INTERVAL), None);
        feed(&mut d, t1, 1, -20, 10);
        d.tick(t1 + SPEAKER_INTERVAL * 2);
        assert_eq!(d.current(), Some(ParticipantId(1)));
        assert_eq!(d.remove(ParticipantId(1)), Some(None));
        assert_eq!(d.remove(ParticipantId(3)), None);
    }
}
