//! `gax-benchtable`: turns `gax-loadgen` JSON results into the side-by-side table and plot.
//!
//! Reads every run given, writes the markdown table (`bench::report::table`) between the
//! `<!-- side-by-side:begin -->` and `<!-- side-by-side:end -->` markers of `--readme` (after
//! the `--preamble` text: machine, versions, command) and the comparison PNG to `--plot`.
//! `bench/scripts/side-by-side.sh` runs it at the end.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bench::report::{plot_compare, table, Run};
use clap::Parser;

const BEGIN: &str = "<!-- side-by-side:begin -->";
const END: &str = "<!-- side-by-side:end -->";

#[derive(Debug, Parser)]
#[command(name = "gax-benchtable", version)]
struct Args {
    /// The README whose side-by-side section is replaced.
    #[arg(long)]
    readme: Option<PathBuf>,
    /// Markdown put before the table (machine, versions, command).
    #[arg(long)]
    preamble: Option<PathBuf>,
    /// Write the comparison plot here; the table links it by file name.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// `gax-loadgen --out` files.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

/// `readme` with the text between the markers replaced by `section`.
fn splice(readme: &str, section: &str) -> anyhow::Result<String> {
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        bail!("the README has no {BEGIN} ... {END} section");
    };
    if end < begin {
        bail!("{END} comes before {BEGIN}");
    }
    Ok(format!(
        "{}{BEGIN}\n{section}{}",
        &readme[..begin],
        &readme[end..]
    ))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for path in &args.runs {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let run: Run = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a gax-loadgen result", path.display()))?;
        runs.push(run);
    }
    let mut section = String::new();
    if let Some(p) = &args.preamble {
        section +=
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        section += "\n";
    }
    section += &table(&runs);
    if let Some(plot) = &args.plot {
        plot_compare(&runs, plot).with_context(|| format!("plotting {}", plot.display()))?;
        let name = plot
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("plot.png");
        section += &format!("\n![forwarded packets per server CPU-second]({name})\n");
    }
    match &args.readme {
        Some(path) => {
            let readme = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            std::fs::write(path, splice(&readme, &section)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => print!("{section}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_section() {
        let readme = format!("# t\nbefore\n{BEGIN}\nold\n{END}\nafter\n");
        let out = splice(&readme, "new\n").unwrap();
        assert_eq!(out, format!("# t\nbefore\n{BEGIN}\nnew\n{END}\nafter\n"));
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{END}{BEGIN}"), "x").is_err());
    }
}
