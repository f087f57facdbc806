//! Redraws a `gax-loadgen` run's PNG from its JSON (`--out`), e.g. after the plot gained a
//! panel: `cargo run --release -p bench --example replot -- run.json run.png`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(json), Some(png)) = (args.next(), args.next()) else {
        return Err("usage: replot RUN.json OUT.png".into());
    };
    let run: bench::report::Run = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    bench::report::plot_run(&run, std::path::Path::new(&png))?;
    Ok(())
}
