//! What a `gax-loadgen` run records, and how runs are shown: the JSON result ([`Run`]), a PNG
//! plot of one run ([`plot_run`]), and for the side-by-side comparison a markdown table
//! ([`table`]) and a PNG of several runs ([`plot_compare`]).
//!
//! Text in the plots is drawn with a TrueType font found on the system (DejaVu or Liberation,
//! which Debian installs with Chromium); without one the plot is refused with
//! [`PlotError::NoFont`], never drawn without labels.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One second of a run, as the players saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    pub t: u32,
    /// Players that had joined.
    pub players: u64,
    /// Players that received at least one packet in this second.
    #[serde(default)]
    pub receiving: u64,
    /// RTP packets all players received in this second.
    pub packets: u64,
    pub mbit: f64,
    pub loss_pct: f64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_mb: Option<f64>,
    pub generator_cpu_pct: f64,
}

/// A whole run: what was asked, each second of the hold, and the summary over the hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// `gax` or `janus`.
    pub server: String,
    /// `broadcast`, `meeting` or `many-rooms`.
    pub scenario: String,
    pub rooms: usize,
    /// Players per room (broadcast, many-rooms) or participants per room (meeting).
    pub size: usize,
    /// Simulcast layers each publisher sent.
    pub layers: usize,
    pub publishers: usize,
    pub players: usize,
    /// The command line's settings, as given.
    pub args: serde_json::Value,
    pub seconds: Vec<Second>,
    /// Over the hold: packets the players received per second.
    pub packets_per_s: f64,
    /// Over the hold: packets the players received per CPU-second the server used.
    pub packets_per_server_cpu_s: Option<f64>,
    /// Over the hold: the server's CPU, % of one core.
    pub server_cpu_pct: Option<f64>,
    /// The server's largest RSS seen.
    pub server_rss_mb: Option<f64>,
    pub loss_pct: f64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    /// The generator used more than 90% of a core in some second: the numbers may be its
    /// limit rather than the server's.
    pub generator_bound: bool,
    /// The messenger load of the run, if any (`gax-loadgen --chat-sockets`): messages sent,
    /// acked, delivered, errors, disconnects and acked messages lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<serde_json::Value>,
}

/// Loss at or above this is not a load "held" (the equal-loss bar).
pub const LOSS_LIMIT_PCT: f64 = 0.5;

/// A median latency at or above this is not a load held either: a server that keeps up with
/// loss only by queueing (a saturated core buffers rather than drops) is not keeping up.
pub const LATENCY_LIMIT_US: u32 = 50_000;

impl Run {
    /// Whether the server held this load: loss under [`LOSS_LIMIT_PCT`], median latency under
    /// [`LATENCY_LIMIT_US`], and every player joined and receiving in every second (a player
    /// the server dropped shows no loss, only silence).
    pub fn held(&self) -> bool {
        self.loss_pct < LOSS_LIMIT_PCT
            && self.p50_us.is_some_and(|p| p < LATENCY_LIMIT_US)
            && !self.seconds.is_empty()
            && self
                .seconds
                .iter()
                .all(|s| s.players as usize == self.players && s.receiving as usize == self.players)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("no TrueType font found for the plot's text (install fonts-dejavu-core)")]
    NoFont,
    #[error("nothing to plot")]
    Empty,
    #[error("drawing the plot: {0}")]
    Draw(String),
}

fn draw_err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Registers a system font as plotters' "sans-serif" (once per process).
fn ensure_font() -> Result<(), PlotError> {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = FONT.get_or_init(|| {
        const CANDIDATES: &[&str] = &[
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        ];
        CANDIDATES.iter().any(|path| {
            let Ok(bytes) = std::fs::read(path) else {
                return false;
            };
            // plotters keeps fonts for the whole process: one leak of a few hundred kB.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        })
    });
    if *ok {
        Ok(())
    } else {
        Err(PlotError::NoFont)
    }
}

/// A chart of one panel: caption, axes from 0 to the maxima, labelled mesh.
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn axes<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    x_max: f64,
    y_max: f64,
    y_decimals: usize,
) -> Result<Chart<'a, 'b>, PlotError> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.y_decimals$}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// The series' names in a box.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(draw_err)
}

/// A named line of (second, value) points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// One panel: named lines over the run's seconds.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_max: f64,
    lines: &[Line<'_>],
) -> Result<(), PlotError> {
    let y_max = lines
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let mut chart = axes(area, title, "second of the hold", x_max.max(1.0), y_max, 1)?;
    for (name, color, pts) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    legend(&mut chart)
}

/// A PNG of one run, one panel each: packets/s received, latency p50/p99, server and
/// generator CPU, server RSS.
pub fn plot_run(run: &Run, path: &Path) -> Result<(), PlotError> {
    if run.seconds.is_empty() {
        return Err(PlotError::Empty);
    }
    ensure_font()?;
    let root = BitMapBackend::new(path, (1000, 1150)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (title, body) = root.split_vertically(36);
    title
        .titled(
            &format!(
                "{} {} size {} x {} room(s): {} publishers, {} players, {} layer(s)",
                run.server,
                run.scenario,
                run.size,
                run.rooms,
                run.publishers,
                run.players,
                run.layers
            ),
            ("sans-serif", 20),
        )
        .map_err(draw_err)?;
    let panels = body.split_evenly((4, 1));
    let x_max = run.seconds.len() as f64;
    let series = |f: &dyn Fn(&Second) -> Option<f64>| -> Vec<(f64, f64)> {
        run.seconds
            .iter()
            .filter_map(|s| f(s).map(|v| (f64::from(s.t), v)))
            .collect()
    };
    panel(
        &panels[0],
        "RTP packets received per second (all players)",
        x_max,
        &[("packets/s", BLUE, series(&|s| Some(s.packets as f64)))],
    )?;
    panel(
        &panels[1],
        "one-way latency through the server, ms",
        x_max,
        &[
            (
                "p50",
                GREEN,
                series(&|s| s.p50_us.map(|v| f64::from(v) / 1e3)),
            ),
            (
                "p99",
                RED,
                series(&|s| s.p99_us.map(|v| f64::from(v) / 1e3)),
            ),
        ],
    )?;
    panel(
        &panels[2],
        "CPU, % of one core",
        x_max,
        &[
            ("server", MAGENTA, series(&|s| s.server_cpu_pct)),
            ("generator", CYAN, series(&|s| Some(s.generator_cpu_pct))),
        ],
    )?;
    panel(
        &panels[3],
        "server resident memory, MB",
        x_max,
        &[("RSS", BLACK, series(&|s| s.server_rss_mb))],
    )?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Line colours by server, then a fallback.
fn server_color(server: &str) -> RGBColor {
    match server {
        "gax" => RGBColor(0x1f, 0x77, 0xb4),
        "gax-nobwe" => RGBColor(0x2c, 0xa0, 0x2c),
        "janus" => RGBColor(0xd6, 0x27, 0x28),
        _ => RGBColor(0x55, 0x55, 0x55),
    }
}

/// A PNG comparing servers: per scenario, packets per server CPU-second against the number of
/// players, one line per server (loads not held are drawn as hollow points).
pub fn plot_compare(runs: &[Run], path: &Path) -> Result<(), PlotError> {
    let mut scenarios: Vec<&str> = runs.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.sort_unstable();
    scenarios.dedup();
    if scenarios.is_empty() {
        return Err(PlotError::Empty);
    }
    ensure_font()?;
    let root = BitMapBackend::new(path, (1000, 360 * scenarios.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let panels = root.split_evenly((scenarios.len(), 1));
    for (area, scenario) in panels.iter().zip(&scenarios) {
        let mut mine: Vec<&Run> = runs
            .iter()
            .filter(|r| r.scenario == *scenario && r.packets_per_server_cpu_s.is_some())
            .collect();
        mine.sort_by_key(|r| (r.server.clone(), r.players));
        let x_max = mine.iter().map(|r| r.players).max().unwrap_or(1) as f64 * 1.1;
        let y_max = mine
            .iter()
            .filter_map(|r| r.packets_per_server_cpu_s)
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.15;
        let mut chart = axes(
            area,
            &format!("{scenario}: forwarded packets per server CPU-second"),
            "players (receiving peer connections)",
            x_max,
            y_max,
            0,
        )?;
        let mut servers: Vec<&str> = mine.iter().map(|r| r.server.as_str()).collect();
        servers.dedup();
        for server in servers {
            let color = server_color(server);
            let pts: Vec<(f64, f64, bool)> = mine
                .iter()
                .filter(|r| r.server == server)
                .filter_map(|r| Some((r.players as f64, r.packets_per_server_cpu_s?, r.held())))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(server)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart
                .draw_series(pts.iter().map(|&(x, y, held)| {
                    Circle::new(
                        (x, y),
                        4,
                        if held {
                            color.filled()
                        } else {
                            color.stroke_width(1)
                        },
                    )
                }))
                .map_err(draw_err)?;
        }
        legend(&mut chart)?;
    }
    root.present().map_err(draw_err)?;
    Ok(())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

fn ms(us: Option<u32>) -> String {
    us.map_or("–".into(), |v| format!("{:.2}", f64::from(v) / 1e3))
}

/// The side-by-side table in markdown: one row per run, grouped by scenario and load, then
/// per scenario the largest load each server held and the ratio of packets per CPU-second at
/// the largest load both held.
pub fn table(runs: &[Run]) -> String {
    let mut rows: Vec<&Run> = runs.iter().collect();
    rows.sort_by(|a, b| {
        (&a.scenario, a.players, &a.server).cmp(&(&b.scenario, b.players, &b.server))
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | server | publishers | players | packets/s | Mbit/s | loss % | p50 ms | p99 ms | server CPU % | packets per CPU-s | RSS MB | notes |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let mbit = if r.seconds.is_empty() {
            0.0
        } else {
            r.seconds.iter().map(|s| s.mbit).sum::<f64>() / r.seconds.len() as f64
        };
        let mut notes = Vec::new();
        if !r.held() {
            notes.push("not held");
        }
        if r.seconds.iter().any(|s| s.receiving < s.players) {
            notes.push("players stopped receiving");
        }
        if r.generator_bound {
            notes.push("generator-bound");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.2} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.server,
            r.publishers,
            r.players,
            r.packets_per_s,
            mbit,
            r.loss_pct,
            ms(r.p50_us),
            ms(r.p99_us),
            opt(r.server_cpu_pct.map(|c| format!("{c:.1}"))),
            opt(r.packets_per_server_cpu_s.map(|p| format!("{p:.0}"))),
            opt(r.server_rss_mb.map(|m| format!("{m:.0}"))),
            notes.join(", ")
        );
    }
    let mut scenarios: Vec<&str> = rows.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.dedup();
    let mut servers: Vec<&str> = rows.iter().map(|r| r.server.as_str()).collect();
    servers.sort_unstable();
    servers.dedup();
    let _ = writeln!(out);
    for scenario in scenarios {
        let held = |server: &str| -> Vec<&Run> {
            rows.iter()
                .copied()
                .filter(|r| r.scenario == scenario && r.server == server && r.held())
                .collect()
        };
        let largest: Vec<String> = servers
            .iter()
            .map(|s| {
                let n = held(s).iter().map(|r| r.players).max();
                format!("{s} {} players", opt(n))
            })
            .collect();
        let _ = write!(
            out,
            "- **{scenario}**: largest load held (loss < {LOSS_LIMIT_PCT}%, p50 < {} ms): {}",
            LATENCY_LIMIT_US / 1000,
            largest.join(", ")
        );
        // Against Janus: the ratio at the largest load both held.
        let janus = held("janus");
        for server in servers.iter().filter(|s| **s != "janus") {
            let both = held(server)
                .iter()
                .filter_map(|g| {
                    let j = janus.iter().find(|j| j.players == g.players)?;
                    Some((
                        g.players,
                        g.packets_per_server_cpu_s?,
                        j.packets_per_server_cpu_s?,
                    ))
                })
                .max_by_key(|x| x.0);
            if let Some((players, g, j)) = both.filter(|b| b.2 > 0.0) {
                let _ = write!(
                    out,
                    "; at {players} players {server} forwards {:.1}x Janus's packets per CPU-second",
                    g / j
                );
            }
        }
        let _ = writeln!(out, ".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: &str, players: usize, per_cpu: f64, loss: f64) -> Run {
        Run {
            server: server.into(),
            scenario: "broadcast".into(),
            rooms: 1,
            size: players,
            layers: 3,
            publishers: 1,
            players,
            args: serde_json::Value::Null,
            seconds: vec![Second {
                t: 1,
                players: players as u64,
                receiving: players as u64,
                packets: 1000,
                mbit: 8.0,
                loss_pct: loss,
                p50_us: Some(500),
                p99_us: Some(900),
                server_cpu_pct: Some(10.0),
                server_rss_mb: Some(30.0),
                generator_cpu_pct: 50.0,
            }],
            packets_per_s: 1000.0,
            packets_per_server_cpu_s: Some(per_cpu),
            server_cpu_pct: Some(10.0),
            server_rss_mb: Some(30.0),
            loss_pct: loss,
            p50_us: Some(500),
            p99_us: Some(900),
            generator_bound: false,
            chat: None,
        }
    }

    #[test]
    fn table_has_a_row_per_run_and_the_ratio_at_the_largest_load_both_held() {
        let runs = [
            run("gax", 10, 30_000.0, 0.0),
            run("janus", 10, 10_000.0, 0.1),
            run("gax", 50, 40_000.0, 0.0),
            run("janus", 50, 8_000.0, 2.0),
        ];
        let t = table(&runs);
        assert_eq!(
            t.lines().filter(|l| l.starts_with("| broadcast")).count(),
            4
        );
        assert!(t.contains("gax 50 players, janus 10 players"), "{t}");
        assert!(t.contains("at 10 players gax forwards 3.0x"), "{t}");
        assert!(t.contains("| 2.00 |") && t.contains("not held"), "{t}");
        let nobwe = run("gax-nobwe", 10, 20_000.0, 0.0);
        let t = table(&[runs[1].clone(), nobwe]);
        assert!(t.contains("at 10 players gax-nobwe forwards 2.0x"), "{t}");
    }

    #[test]
    fn a_run_with_loss_or_missing_players_is_not_held() {
        assert!(run("gax", 10, 1.0, 0.49).held());
        assert!(!run("gax", 10, 1.0, 0.5).held());
        let mut queued = run("janus", 10, 1.0, 0.0);
        queued.p50_us = Some(99_000);
        assert!(!queued.held(), "no loss but a 99 ms queue");
        let mut r = run("gax", 10, 1.0, 0.0);
        r.players = 11;
        assert!(!r.held());
        let mut silent = run("gax", 10, 1.0, 0.0);
        silent.seconds[0].receiving = 9;
        assert!(!silent.held(), "one player stopped receiving");
    }

    #[test]
    fn plots_are_written_as_png() {
        if ensure_font().is_err() {
            // The error is the documented outcome without a font; nothing else to check.
            let dir = tempfile::tempdir().unwrap();
            let err = plot_run(&run("gax", 1, 1.0, 0.0), &dir.path().join("x.png"));
            assert!(matches!(err, Err(PlotError::NoFont)));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("run.png");
        plot_run(&run("gax", 10, 30_000.0, 0.0), &one).unwrap();
        let both = dir.path().join("compare.png");
        plot_compare(
            &[
                run("gax", 10, 30_000.0, 0.0),
                run("janus", 10, 9_000.0, 0.0),
            ],
            &both,
        )
        .unwrap();
        for path in [one, both] {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", path.display());
            assert!(bytes.len() > 5_000, "a drawn picture, not an empty one");
        }
        assert!(matches!(
            plot_compare(&[], &dir.path().join("none.png")),
            Err(PlotError::Empty)
        ));
    }
}
