//! alloy `sol!` bindings of every deployed contract, generated at build time from the forge
//! artifacts in `$OUT_DIR/forge-out` (see `build.rs`). Each contract is a module with its types,
//! calls, events, errors, a `deploy` function and an `...Instance` for calls.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The contracts' `Receipt` (one ABI type, one Rust type per contract module) from the shared one.
macro_rules! receipt_from_primitives {
    ($($module:ident),*) => {$(
        impl From<verinfer_primitives::Receipt> for $module::Receipt {
            fn from(r: verinfer_primitives::Receipt) -> Self {
                Self {
                    jobId: r.jobId,
                    shardIndex: r.shardIndex,
                    skuId: r.skuId,
                    worker: r.worker,
                    inputRoot: r.inputRoot,
                    outputRoot: r.outputRoot,
                    traceRoot: r.traceRoot,
                    stepCount: r.stepCount,
                    tokensProcessed: r.tokensProcessed,
                }
            }
        }
    )*};
}

receipt_from_primitives!(BatchInbox, DisputeGame, Audits);
