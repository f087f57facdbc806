//! The bandwidth budget toward one peer: what the send-side estimate and the peer's own cap
//! allow, shared among the video tracks it receives, and the goal the estimator probes for.

use crate::layers::{DEFAULT_BITRATES, MAX_LAYERS};

/// Bitrate set aside for the audio a peer receives before video shares the rest.
pub const AUDIO_ALLOWANCE: u64 = 64_000;

/// The least the bandwidth estimator keeps flowing to a peer that receives anything.
pub const MIN_BITRATE_GOAL: u64 = 300_000;

/// The budget state of one peer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Budget {
    /// A cap on what this peer receives, bits per second (set by the client).
    pub max_bitrate: Option<u64>,
    /// The send-side bandwidth estimate toward this peer, bits per second.
    pub estimate: Option<u64>,
    /// How many video tracks this peer receives (the budget is shared among them).
    pub video_tracks: usize,
    /// Added to the goal to ask for a new probe (see [`Budget::goal`]).
    probe_bump: u64,
}

impl Budget {
    /// The bitrate each of this peer's video tracks may use (`None`: unlimited).
    pub fn per_video_track(&self) -> Option<u64> {
        let total = match (self.max_bitrate, self.estimate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        // Leave room for audio (about 64 kbit/s per track) before sharing among video tracks.
        Some(total.saturating_sub(AUDIO_ALLOWANCE) / self.video_tracks.max(1) as u64)
    }

    /// What to tell the estimator, as (minimum, desired) bits per second: twice the top layer
    /// of every video track, so it keeps probing above what the top layers need and an upgrade
    /// (a tile that grows) finds the bandwidth already known.
    pub fn goal(&self) -> (u64, u64) {
        // `probe_bump` nudges the goal up by a few bit/s: str0m only starts an allocation probe
        // when the desired rate rises, and a subscriber that now wants more (a tile grew) should
        // not wait for the estimate to creep up on its own.
        let desired = AUDIO_ALLOWANCE
            + self.video_tracks as u64 * 2 * DEFAULT_BITRATES[MAX_LAYERS - 1]
            + self.probe_bump;
        (MIN_BITRATE_GOAL, desired)
    }

    /// Moves the goal a little, so the estimator probes again.
    pub fn bump_probe(&mut self) {
        self.probe_bump = (self.probe_bump + 1_000) % 64_000;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smaller_of_cap_and_estimate_is_shared_among_video_tracks_after_audio() {
        let mut b = Budget::default();
        assert_eq!(b.per_video_track(), None, "no cap, no estimate: unlimited");
        b.estimate = Some(2_064_000);
        assert_eq!(b.per_video_track(), Some(2_000_000));
        b.max_bitrate = Some(1_064_000);
        b.video_tracks = 2;
        assert_eq!(b.per_video_track(), Some(500_000));
    }

    #[test]
    fn the_goal_follows_the_tracks_and_a_probe_bump_raises_it() {
        let mut b = Budget {
            video_tracks: 2,
            ..Default::default()
        };
        let (min, desired) = b.goal();
        assert_eq!(min, MIN_BITRATE_GOAL);
        assert_eq!(desired, AUDIO_ALLOWANCE + 4 * DEFAULT_BITRATES[2]);
        b.bump_probe();
        assert_eq!(b.goal().1, desired + 1_000);
    }
}
