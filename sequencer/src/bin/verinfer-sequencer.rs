//! Stand-alone sequencer binary, the same code as `verinfer sequencer --config FILE` (the
//! crash tests spawn this one because a test can only locate binaries of its own package).

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let path = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(p)) => PathBuf::from(p),
        _ => {
            eprintln!("usage: verinfer-sequencer --config FILE");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(verinfer_sequencer::run_from_config(&path)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sequencer failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
