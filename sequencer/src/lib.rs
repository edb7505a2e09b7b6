//! The Verinfer sequencer: takes signed jobs from buyers over JSON-RPC, stores them durably in
//! redb before acknowledging, cuts them into shards, assigns shards to staked workers
//! (stake-weighted, re-assigned on missed deadlines), checks their signed receipts, batches
//! receipts, posts batches to the L1 batch inbox and follows L1 for confirmations, reorgs,
//! finalization and disputes.
//!
//! See `docs/SEQUENCER.md` (design) and `docs/RPC.md` (the API).

pub mod alloy_l1;
pub mod batcher;
pub mod config;
pub mod gas;
pub mod intake;
pub mod l1;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod server;
pub mod store;

use std::sync::Arc;

pub use config::Config;
pub use l1::L1;
pub use node::Sequencer;

/// Failures that stop the sequencer or a background round.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// L1.
    #[error(transparent)]
    L1(#[from] l1::L1Error),
    /// Socket.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// A background task died.
    #[error("task: {0}")]
    Task(String),
}

/// A running sequencer.
pub struct Running {
    /// The core (for tests and embedding).
    pub sequencer: Arc<Sequencer>,
    /// Where the server listens.
    pub addr: std::net::SocketAddr,
    /// Stops the server.
    pub handle: jsonrpsee::server::ServerHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the server and background tasks and waits until the store is closed (so the same
    /// directory can be opened again in this process).
    pub async fn stop(self) {
        let _ = self.handle.stop();
        self.handle.stopped().await;
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        drop(self.sequencer);
        let _ = self.writer.await;
    }
}

/// Opens the state, starts the RPC server, the scheduler and the batcher/follower.
pub async fn start(cfg: Config, l1: Arc<dyn L1>) -> Result<Running, Error> {
    let metrics = Arc::new(metrics::Metrics::default());
    let listen = cfg.listen;
    let (seq, writer) = Sequencer::new(cfg, l1, metrics).await?;
    let (addr, handle) = server::serve(seq.clone(), listen).await?;
    let tasks = vec![seq.spawn_scheduler(), batcher::spawn(seq.clone())];
    Ok(Running {
        sequencer: seq,
        addr,
        handle,
        tasks,
        writer,
    })
}

/// `verinfer sequencer --config FILE`: loads the config, reads the poster key from the
/// environment variable it names, connects to L1 and runs until SIGINT/SIGTERM.
pub async fn run_from_config(path: &std::path::Path) -> Result<(), Error> {
    let cfg = Config::load(path)?;
    let key = std::env::var(&cfg.l1.key_env).map_err(|_| {
        Error::Config(config::ConfigError::Invalid(format!(
            "environment variable {} (the L1 poster key) is not set",
            cfg.l1.key_env
        )))
    })?;
    let l1 = alloy_l1::AlloyL1::connect(&cfg.l1, &key)?;
    tracing::info!(poster = %l1.sender(), rpc = %cfg.l1.rpc_url, inbox = %cfg.l1.batch_inbox, "connecting to L1");
    let running = start(cfg, Arc::new(l1)).await?;
    // Line for scripts and tests that start the sequencer on port 0.
    println!("listening on {}", running.addr);
    wait_for_shutdown().await?;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

async fn wait_for_shutdown() -> Result<(), Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
