//! The Verinfer sequencer: takes signed jobs from buyers over JSON-RPC, stores them durably in
//! redb before acknowledging, cuts them into shards, assigns shards to staked workers
//! (stake-weighted, re-assigned on missed deadlines), checks their signed receipts, batches
//! receipts, posts batches to the L1 batch inbox and follows L1 for confirmations, reorgs,
//! finalization and disputes.
//!
//! See `docs/SEQUENCER.md` (design) and `docs/RPC.md` (the API).

pub mod batcher;
pub mod config;
pub mod l1;
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
