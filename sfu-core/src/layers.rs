//! Simulcast layer choice for one consumer, sans-IO.
//!
//! The target layer is the smallest of: the layer that fits the size at which the subscriber
//! renders the video, the best layer its bitrate budget allows, and the best layer the publisher
//! is sending. A pinned layer overrides the first two. Moving down happens at once; moving up
//! because more bandwidth appeared waits until that has held for [`UP_HOLD`], so a noisy
//! estimate does not make the stream flap. Every change of target carries the reason that caused
//! it.
//!
//! Layers are indexed from 0 (smallest) to [`MAX_LAYERS`]-1; the RID names map onto them with
//! [`layer_index`].

use std::time::{Duration, Instant};

/// Simulcast layers per track.
pub const MAX_LAYERS: usize = 3;

/// An upward move for bandwidth must be allowed this long before it happens.
pub const UP_HOLD: Duration = Duration::from_secs(2);

/// A downward move for bandwidth waits this long, so a momentary dip of the estimate does not
/// cost a layer, unless the budget is below half of what the current layer needs.
pub const DOWN_HOLD: Duration = Duration::from_millis(1000);

/// Widths assumed before a layer's first keyframe tells its real size (1280x720 capture at
/// scale 1/4, 1/2, 1: what the web client sends).
pub const DEFAULT_WIDTHS: [u16; MAX_LAYERS] = [320, 640, 1280];

/// Bitrates assumed for a layer that is active but not measured yet (its first second): what
/// the web client asks its encoder for.
pub const DEFAULT_BITRATES: [u64; MAX_LAYERS] = [150_000, 500_000, 1_500_000];

/// Which VP8 temporal layers fit when even the chosen spatial layer exceeds the budget:
/// `None` forwards all; `Some(1)` drops the top temporal layer (about a quarter of the rate
/// in the usual three-layer pattern), `Some(0)` keeps only the base layer (about half).
pub fn temporal_limit(budget: Option<u64>, layer_rate: u64) -> Option<u8> {
    let budget = budget?;
    if layer_rate == 0 || budget >= layer_rate {
        None
    } else if budget * 4 >= layer_rate * 3 {
        Some(1)
    } else {
        Some(0)
    }
}

/// The bitrate layer `index` costs: measured (peak-held), or the default while unmeasured.
pub fn rate_of(layers: &[LayerState; MAX_LAYERS], index: u8) -> u64 {
    match layers[index as usize].bitrate {
        0 => DEFAULT_BITRATES[index as usize],
        r => r,
    }
}

/// The layer index of a RID: `q`/`l`/`low` = 0, `h`/`m`/`mid` = 1, `f`/`high`/`full` = 2,
/// or `0`/`1`/`2`. Anything else is not a layer we know.
pub fn layer_index(rid: &str) -> Option<u8> {
    match rid {
        "q" | "l" | "low" | "0" => Some(0),
        "h" | "m" | "mid" | "1" => Some(1),
        "f" | "high" | "full" | "2" => Some(2),
        _ => None,
    }
}

/// The RID name the web client uses for a layer index.
pub fn layer_name(index: u8) -> &'static str {
    match index {
        0 => "q",
        1 => "h",
        _ => "f",
    }
}

/// Why the layer a subscriber receives changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The first layer picked for a new consumer.
    Initial,
    /// The size at which the subscriber renders the video changed.
    RenderedSize,
    /// The subscriber's bitrate budget (estimate or cap) changed.
    Bandwidth,
    /// The publisher stopped or resumed sending a layer.
    PublisherPaused,
    /// The subscriber pinned or unpinned a layer.
    Manual,
}

impl SwitchReason {
    pub const ALL: [SwitchReason; 5] = [
        SwitchReason::Initial,
        SwitchReason::RenderedSize,
        SwitchReason::Bandwidth,
        SwitchReason::PublisherPaused,
        SwitchReason::Manual,
    ];

    /// Stable name, used in the protocol and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchReason::Initial => "initial",
            SwitchReason::RenderedSize => "rendered_size",
            SwitchReason::Bandwidth => "bandwidth",
            SwitchReason::PublisherPaused => "publisher_paused",
            SwitchReason::Manual => "manual",
        }
    }

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the publisher is sending on one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerState {
    /// Packets arrived recently.
    pub active: bool,
    /// Measured bitrate, bits per second.
    pub bitrate: u64,
    /// Frame width from the layer's last keyframe.
    pub width: Option<u16>,
}

/// Everything the choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inputs {
    pub layers: [LayerState; MAX_LAYERS],
    /// Width (in device pixels) at which the subscriber renders the video; `None` = unknown.
    pub rendered_width: Option<u32>,
    /// Bits per second this consumer may use; `None` = unlimited.
    pub budget: Option<u64>,
    /// A layer the subscriber pinned.
    pub pinned: Option<u8>,
}

/// The per-consumer decision state.
#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    target: Option<u8>,
    last: Option<Caps>,
    /// Since when bandwidth has allowed a layer above the target.
    up_since: Option<Instant>,
    /// Since when bandwidth has asked for a layer below the target.
    down_since: Option<Instant>,
}

/// The limits each input sets, kept to tell which one moved the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Caps {
    size: u8,
    bandwidth: u8,
    publisher: u8,
    pinned: Option<u8>,
}

impl Inputs {
    fn caps(&self) -> Option<Caps> {
        let publisher = (0..MAX_LAYERS as u8)
            .rev()
            .find(|l| self.layers[*l as usize].active)?;
        let width = |l: u8| {
            self.layers[l as usize]
                .width
                .unwrap_or(DEFAULT_WIDTHS[l as usize])
        };
        // The smallest layer at least as wide as the tile; the top one if none is.
        let size = match self.rendered_width {
            None => MAX_LAYERS as u8 - 1,
            Some(w) => (0..MAX_LAYERS as u8)
                .find(|l| u32::from(width(*l)) >= w)
                .unwrap_or(MAX_LAYERS as u8 - 1),
        };
        // The best active layer within the budget; the lowest active one if none fits.
        let bandwidth = match self.budget {
            None => MAX_LAYERS as u8 - 1,
            Some(b) => (0..MAX_LAYERS as u8)
                .rev()
                .filter(|l| self.layers[*l as usize].active)
                .find(|l| rate_of(&self.layers, *l) <= b)
                .or_else(|| (0..MAX_LAYERS as u8).find(|l| self.layers[*l as usize].active))
                .unwrap_or(0),
        };
        Some(Caps {
            size,
            bandwidth,
            publisher,
            pinned: self.pinned,
        })
    }
}

impl Caps {
    /// The target these limits allow: the best active layer at or below the limit.
    fn target(&self, layers: &[LayerState; MAX_LAYERS]) -> u8 {
        let limit = match self.pinned {
            Some(p) => p.min(self.publisher),
            None => self.size.min(self.bandwidth).min(self.publisher),
        };
        (0..=limit)
            .rev()
            .find(|l| layers[*l as usize].active)
            .unwrap_or(limit)
    }
}

impl LayerSelector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current target layer, once one was chosen.
    pub fn target(&self) -> Option<u8> {
        self.target
    }

    /// Re-evaluates the choice. Returns the new target and why, when it changes.
    pub fn update(&mut self, now: Instant, inputs: &Inputs) -> Option<(u8, SwitchReason)> {
        let caps = inputs.caps()?;
        let wanted = caps.target(&inputs.layers);
        let Some(current) = self.target else {
            self.target = Some(wanted);
            self.last = Some(caps);
            return Some((wanted, SwitchReason::Initial));
        };
        let last = self.last.unwrap_or(caps);
        let reason = if caps.pinned != last.pinned {
            SwitchReason::Manual
        } else if caps.publisher != last.publisher || !inputs.layers[current as usize].active {
            SwitchReason::PublisherPaused
        } else if caps.bandwidth != last.bandwidth && caps.size == last.size {
            SwitchReason::Bandwidth
        } else if caps.size != last.size {
            SwitchReason::RenderedSize
        } else {
            SwitchReason::Bandwidth
        };
        self.last = Some(caps);
        if wanted == current {
            self.up_since = None;
            self.down_since = None;
            return None;
        }
        if wanted > current && reason == SwitchReason::Bandwidth {
            // Hold upward moves that only bandwidth allows.
            self.down_since = None;
            let since = *self.up_since.get_or_insert(now);
            if now.saturating_duration_since(since) < UP_HOLD {
                return None;
            }
        }
        if wanted < current && reason == SwitchReason::Bandwidth {
            // Hold downward moves for bandwidth too, unless the shortfall is severe.
            self.up_since = None;
            let rate = rate_of(&inputs.layers, current);
            let severe = inputs.budget.is_some_and(|b| b.saturating_mul(2) < rate);
            let since = *self.down_since.get_or_insert(now);
            if !severe && now.saturating_duration_since(since) < DOWN_HOLD {
                return None;
            }
        }
        self.up_since = None;
        self.down_since = None;
        self.target = Some(wanted);
        Some((wanted, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(active: [bool; 3]) -> [LayerState; 3] {
        let rates = [150_000, 500_000, 1_500_000];
        let mut out = [LayerState::default(); 3];
        for i in 0..3 {
            out[i] = LayerState {
                active: active[i],
                bitrate: rates[i],
                width: Some(DEFAULT_WIDTHS[i]),
            };
        }
        out
    }

    fn inputs(width: Option<u32>, budget: Option<u64>) -> Inputs {
        Inputs {
            layers: layers([true; 3]),
            rendered_width: width,
            budget,
            pinned: None,
        }
    }

    #[test]
    fn temporal_layers_are_dropped_only_when_the_layer_does_not_fit() {
        assert_eq!(temporal_limit(None, 500_000), None);
        assert_eq!(temporal_limit(Some(600_000), 500_000), None);
        assert_eq!(temporal_limit(Some(400_000), 500_000), Some(1));
        assert_eq!(temporal_limit(Some(200_000), 500_000), Some(0));
        assert_eq!(temporal_limit(Some(1), 0), None, "unmeasured layer");
    }

    #[test]
    fn rid_names_map_to_layers() {
        assert_eq!(layer_index("q"), Some(0));
        assert_eq!(layer_index("h"), Some(1));
        assert_eq!(layer_index("f"), Some(2));
        assert_eq!(layer_index("x"), None);
        assert_eq!(layer_name(2), "f");
    }

    #[test]
    fn picks_the_smallest_of_size_bandwidth_and_publisher() {
        let t0 = Instant::now();
        let mut s = LayerSelector::new();
        assert_eq!(
            s.update(t0, &inputs(Some(300), None)),
            Some((0, SwitchReason::Initial)),
            "a small tile gets q"
        );
        assert_eq!(
            s.update(t0, &inputs(Some(1200), None)),
            Some((2, SwitchReason::RenderedSize)),
            "a big tile gets f at once"
        );
        assert_eq!(
            s.update(t0, &inputs(Some(1200), Some(600_000))),
            Some((1, SwitchReason::Bandwidth)),
            "a budget under f's rate drops to h at once"
        );
        assert_eq!(
            s.update(t0, &inputs(Some(1200), Some(600_000))),
            None,
            "stable"
        );
        assert_eq!(
            s.update(t0, &inputs(Some(1200), Some(10_000))),
            Some((0, SwitchReason::Bandwidth)),
            "below every layer: the lowest"
        );
    }

    #[test]
    fn upward_moves_for_bandwidth_wait_for_the_hold() {
        let t0 = Instant::now();
        let mut s = LayerSelector::new();
        s.update(t0, &inputs(None, Some(200_000)));
        assert_eq!(s.target(), Some(0));
        let plenty = inputs(None, Some(5_000_000));
        assert_eq!(s.update(t0, &plenty), None, "not yet");
        assert_eq!(s.update(t0 + UP_HOLD / 2, &plenty), None, "still holding");
        assert_eq!(
            s.update(t0 + UP_HOLD, &plenty),
            Some((2, SwitchReason::Bandwidth))
        );
        // A dip resets the hold.
        let mut s = LayerSelector::new();
        s.update(t0, &inputs(None, Some(200_000)));
        s.update(t0, &plenty);
        s.update(
            t0 + Duration::from_millis(500),
            &inputs(None, Some(200_000)),
        );
        assert_eq!(s.update(t0 + UP_HOLD, &plenty), None, "the hold restarted");
    }

    #[test]
    fn a_mild_dip_of_the_budget_must_last_before_moving_down() {
        let t0 = Instant::now();
        let mut s = LayerSelector::new();
        s.update(t0, &inputs(None, None));
        assert_eq!(s.target(), Some(2));
        // 1.2 Mbit/s for a 1.5 Mbit/s layer: short, but not severely.
        let dip = inputs(None, Some(1_200_000));
        assert_eq!(s.update(t0, &dip), None, "a dip is not acted on at once");
        assert_eq!(
            s.update(t0 + DOWN_HOLD / 2, &inputs(None, None)),
            None,
            "recovered"
        );
        assert_eq!(s.update(t0 + DOWN_HOLD, &dip), None, "the hold restarted");
        assert_eq!(
            s.update(t0 + DOWN_HOLD * 2, &dip),
            Some((1, SwitchReason::Bandwidth)),
            "a sustained shortfall moves down"
        );
    }

    #[test]
    fn publisher_pauses_and_pins() {
        let t0 = Instant::now();
        let mut s = LayerSelector::new();
        s.update(t0, &inputs(None, None));
        assert_eq!(s.target(), Some(2));
        let mut paused = inputs(None, None);
        paused.layers = layers([true, true, false]);
        assert_eq!(
            s.update(t0, &paused),
            Some((1, SwitchReason::PublisherPaused))
        );
        assert_eq!(
            s.update(t0, &inputs(None, None)),
            Some((2, SwitchReason::PublisherPaused)),
            "resumed"
        );
        let mut pinned = inputs(None, None);
        pinned.pinned = Some(0);
        assert_eq!(s.update(t0, &pinned), Some((0, SwitchReason::Manual)));
        pinned.rendered_width = Some(2000);
        assert_eq!(s.update(t0, &pinned), None, "a pin overrides the size");
        assert_eq!(
            s.update(t0, &inputs(None, None)),
            Some((2, SwitchReason::Manual)),
            "unpinned"
        );
        // Nothing active: no decision.
        let mut none = inputs(None, None);
        none.layers = layers([false; 3]);
        assert_eq!(LayerSelector::new().update(t0, &none), None);
    }

    #[test]
    fn measured_widths_beat_the_defaults() {
        let t0 = Instant::now();
        let mut i = inputs(Some(400), None);
        // The publisher's q layer is really 480 wide: it fits a 400-pixel tile.
        i.layers[0].width = Some(480);
        assert_eq!(
            LayerSelector::new().update(t0, &i),
            Some((0, SwitchReason::Initial))
        );
        i.layers[0].width = Some(320);
        assert_eq!(
            LayerSelector::new().update(t0, &i),
            Some((1, SwitchReason::Initial))
        );
    }
}

/// A layer counts as paused when no packet arrived for this long.
pub const LAYER_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long a layer's peak bitrate is remembered for bandwidth decisions.
pub const PEAK_HOLD: Duration = Duration::from_secs(5);

/// How often a producer re-evaluates its consumers' layer choices.
pub const EVAL_INTERVAL: Duration = Duration::from_millis(250);

/// What the SFU observes of one incoming layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerIn {
    last_arrival: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
    bitrate: u64,
    /// The highest one-second rate of the last [`PEAK_HOLD`]: an encoder ramping up (or
    /// idling on a still picture) must not make a layer look cheaper than it soon will be.
    peak: u64,
    peak_at: Option<Instant>,
    width: Option<u16>,
    last_keyframe_request: Option<Instant>,
}

/// A new simulcast track is watched this long before its first layer choice, so the choice
/// sees every layer the publisher sends (browsers send q first in each frame).
pub const WARMUP: Duration = Duration::from_millis(200);

/// The incoming layers of one simulcast producer.
#[derive(Debug, Clone, Default)]
pub struct SimulcastIn {
    layers: [LayerIn; MAX_LAYERS],
    last_eval: Option<Instant>,
    first_packet: Option<Instant>,
}

impl SimulcastIn {
    /// Records a packet of `layer` (bytes on the wire for the bitrate, a keyframe's width).
    #[inline]
    pub fn on_packet(&mut self, now: Instant, layer: u8, bytes: usize, width: Option<u16>) {
        self.first_packet.get_or_insert(now);
        let l = &mut self.layers[layer as usize];
        l.last_arrival = Some(now);
        l.window_bytes += bytes as u64;
        let start = *l.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            l.bitrate = l.window_bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            l.window_bytes = 0;
            l.window_start = Some(now);
            let expired = l
                .peak_at
                .is_none_or(|t| now.saturating_duration_since(t) > PEAK_HOLD);
            if expired || l.bitrate >= l.peak {
                l.peak = l.bitrate;
                l.peak_at = Some(now);
            }
        }
        if width.is_some() {
            l.width = width;
        }
    }

    /// The publisher's layers as the selector sees them.
    pub fn states(&self, now: Instant) -> [LayerState; MAX_LAYERS] {
        let mut out = [LayerState::default(); MAX_LAYERS];
        for (o, l) in out.iter_mut().zip(self.layers.iter()) {
            *o = LayerState {
                active: l
                    .last_arrival
                    .is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT),
                bitrate: l.peak.max(l.bitrate),
                width: l.width,
            };
        }
        out
    }

    /// True during the first [`WARMUP`] of the track: no layer choice yet.
    pub fn warming_up(&self, now: Instant) -> bool {
        self.first_packet
            .is_none_or(|t| now.saturating_duration_since(t) < WARMUP)
    }

    /// True (and remembered) when the consumers' choices are due for a re-evaluation.
    pub fn eval_due(&mut self, now: Instant) -> bool {
        match self.last_eval {
            Some(t) if now.saturating_duration_since(t) < EVAL_INTERVAL => false,
            _ => {
                self.last_eval = Some(now);
                true
            }
        }
    }

    /// Forces a re-evaluation on the next packet (an input changed).
    pub fn invalidate(&mut self) {
        self.last_eval = None;
    }

    /// True when a keyframe request for `layer` may go out now (throttled per layer).
    pub fn keyframe_request_due(&mut self, now: Instant, layer: u8, throttle: Duration) -> bool {
        let l = &mut self.layers[layer as usize];
        match l.last_keyframe_request {
            Some(t) if now.saturating_duration_since(t) < throttle => false,
            _ => {
                l.last_keyframe_request = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod simulcast_in_tests {
    use super::*;

    #[test]
    fn measures_bitrate_activity_and_width() {
        let t0 = Instant::now();
        let mut s = SimulcastIn::default();
        for i in 0..=100u32 {
            s.on_packet(t0 + Duration::from_millis(10 * u64::from(i)), 2, 1250, None);
        }
        s.on_packet(t0, 0, 100, Some(320));
        let st = s.states(t0 + Duration::from_millis(1000));
        assert!(st[2].active);
        // 100 packets of 1250 bytes over 1 s = 1 Mbit/s.
        assert!(
            (990_000..=1_010_000).contains(&st[2].bitrate),
            "{}",
            st[2].bitrate
        );
        assert_eq!(st[0].width, Some(320));
        assert!(!st[0].active, "q last seen 1 s ago: paused");
        assert!(!st[1].active, "h never seen");
    }

    #[test]
    fn evaluation_and_keyframe_requests_are_paced() {
        let t0 = Instant::now();
        let mut s = SimulcastIn::default();
        assert!(s.eval_due(t0));
        assert!(!s.eval_due(t0 + EVAL_INTERVAL / 2));
        s.invalidate();
        assert!(s.eval_due(t0 + EVAL_INTERVAL / 2));
        let th = Duration::from_millis(500);
        assert!(s.keyframe_request_due(t0, 1, th));
        assert!(!s.keyframe_request_due(t0 + th / 2, 1, th));
        assert!(s.keyframe_request_due(t0, 0, th), "per layer");
        assert!(s.keyframe_request_due(t0 + th, 1, th));
    }
}
