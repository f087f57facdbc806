//! Prometheus text exposition of per-session and per-consumer counters, labelled by room and
//! participant (the worker-level counters are written in `http::metrics`).

use std::fmt::Write as _;

use sfu_core::layers::SwitchReason;
use sfu_core::SessionStats;

/// A Prometheus label value, escaped (backslash, quote, newline).
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn ids(s: &SessionStats) -> String {
    format!(
        "room=\"{}\",participant=\"{}\"",
        label(&s.room),
        s.participant
    )
}

/// The `# HELP` and `# TYPE` lines of a metric family.
pub(crate) fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One counter family with an extra label: `values` gives (label value, count) per session.
fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    sessions: &[SessionStats],
    values: impl Fn(&SessionStats) -> Vec<(&'static str, u64)>,
) {
    head(out, name, "counter", help);
    for s in sessions {
        for (value, n) in values(s) {
            let _ = writeln!(out, "{name}{{{},{label}=\"{value}\"}} {n}", ids(s));
        }
    }
}

/// Appends the `gax_session_*` and `gax_consumer_*` families.
pub fn sessions(out: &mut String, sessions: &[SessionStats]) {
    type Get = fn(&SessionStats) -> u64;
    let counters: [(&str, &str, Get); 4] = [
        (
            "gax_session_datagrams_in_total",
            "Datagrams received from the participant",
            |s| s.datagrams_in,
        ),
        (
            "gax_session_bytes_in_total",
            "Bytes received from the participant",
            |s| s.bytes_in,
        ),
        (
            "gax_session_rtp_published_total",
            "RTP packets the participant published",
            |s| s.rtp_published,
        ),
        (
            "gax_session_rtp_received_total",
            "RTP packets forwarded to the participant",
            |s| s.rtp_received,
        ),
    ];
    for (name, help, get) in counters {
        head(out, name, "counter", help);
        for s in sessions {
            let _ = writeln!(out, "{name}{{{}}} {}", ids(s), get(s));
        }
    }

    labelled(
        out,
        "gax_session_dropped_total",
        "Packets of the participant dropped, by reason",
        "reason",
        sessions,
        |s| {
            vec![
                ("rejected", s.dropped_rejected),
                ("unknown_ssrc", s.dropped_unknown_ssrc),
                ("codec", s.dropped_codec),
                ("not_ready", s.dropped_not_ready),
            ]
        },
    );
    labelled(
        out,
        "gax_session_nacks_total",
        "NACKs exchanged with the participant, by direction",
        "direction",
        sessions,
        |s| {
            vec![
                ("received", s.feedback.nacks_received),
                ("sent", s.feedback.nacks_sent),
            ]
        },
    );
    labelled(
        out,
        "gax_session_keyframe_requests_total",
        "PLIs and FIRs exchanged with the participant, by direction",
        "direction",
        sessions,
        |s| {
            vec![
                ("received", s.feedback.keyframe_requests_received),
                ("sent", s.feedback.keyframe_requests_sent),
            ]
        },
    );

    head(
        out,
        "gax_session_layer_switches_total",
        "counter",
        "Simulcast switches on the tracks the participant receives, by reason",
    );
    for s in sessions {
        for reason in SwitchReason::ALL {
            let _ = writeln!(
                out,
                "gax_session_layer_switches_total{{{},reason=\"{}\"}} {}",
                ids(s),
                reason.as_str(),
                s.layer_switches[reason.index()]
            );
        }
    }

    head(
        out,
        "gax_session_bandwidth_estimate_bps",
        "gauge",
        "Send-side bandwidth estimate toward the participant",
    );
    for s in sessions {
        if let Some(bps) = s.estimate_bps {
            let _ = writeln!(
                out,
                "gax_session_bandwidth_estimate_bps{{{}}} {bps}",
                ids(s)
            );
        }
    }
    head(
        out,
        "gax_session_rtt_seconds",
        "gauge",
        "Round-trip time to the participant (RTCP)",
    );
    for s in sessions {
        if let Some(ms) = s.rtt_ms {
            let _ = writeln!(out, "gax_session_rtt_seconds{{{}}} {}", ids(s), ms / 1000.0);
        }
    }

    head(
        out,
        "gax_consumer_layer",
        "gauge",
        "Simulcast layer a subscriber receives of a publisher's video (0 = q, 1 = h, 2 = f)",
    );
    for s in sessions {
        for c in &s.consumers {
            let Some(layer) = c.layer else { continue };
            let index = match layer {
                "q" => 0,
                "h" => 1,
                _ => 2,
            };
            let _ = writeln!(
                out,
                "gax_consumer_layer{{room=\"{}\",subscriber=\"{}\",publisher=\"{}\",mid=\"{}\",layer=\"{layer}\",target=\"{}\"}} {index}",
                label(&s.room),
                s.participant,
                c.publisher,
                label(&c.mid),
                c.target.unwrap_or("")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu_core::{ConsumerStats, Kind, ParticipantId};

    #[test]
    fn labels_are_escaped_and_families_present() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let s = SessionStats {
            participant: ParticipantId(7),
            room: "r\"1".into(),
            rtp_received: 42,
            layer_switches: [1, 2, 0, 0, 0],
            estimate_bps: Some(1_000_000),
            consumers: vec![ConsumerStats {
                mid: "3".into(),
                publisher: ParticipantId(2),
                kind: Kind::Video,
                layer: Some("h"),
                target: Some("f"),
                rendered_width: Some(640),
                pinned: None,
            }],
            ..Default::default()
        };
        let mut out = String::new();
        sessions(&mut out, &[s]);
        assert!(
            out.contains("gax_session_rtp_received_total{room=\"r\\\"1\",participant=\"p7\"} 42"),
            "{out}"
        );
        assert!(out.contains("reason=\"rendered_size\"} 2"), "{out}");
        assert!(out.contains("gax_consumer_layer{room=\"r\\\"1\",subscriber=\"p7\",publisher=\"p2\",mid=\"3\",layer=\"h\",target=\"f\"} 1"), "{out}");
        assert!(out.contains(
            "gax_session_bandwidth_estimate_bps{room=\"r\\\"1\",participant=\"p7\"} 1000000"
        ));
    }
}
