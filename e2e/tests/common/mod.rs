//! What the end-to-end tests share: the binary under test, the SKU, seeded randomness.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `verinfer` binary: `$VERINFER_BIN`, else the one cargo built next to this test
/// (`cargo test --workspace` builds it; after changing the daemons, build it before running
/// only this crate's tests: `cargo build -p verinfer`).
pub fn verinfer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VERINFER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/verinfer
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("verinfer"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p verinfer` (or `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// The `verinfer-faulty` binary (the worker with fault injection): `$VERINFER_FAULTY_BIN`, else
/// next to `verinfer` (`ops/test.sh` builds it: `cargo build -p verinfer --features
/// fault-injection --bin verinfer-faulty`).
pub fn faulty_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VERINFER_FAULTY_BIN") {
        return p.into();
    }
    let bin = verinfer_bin().with_file_name("verinfer-faulty");
    assert!(
        bin.exists(),
        "{} not built: cargo build -p verinfer --features fault-injection --bin verinfer-faulty",
        bin.display()
    );
    bin
}

/// The campaign seed: `$VERINFER_E2E_SEED`, else from the clock.
pub fn seed() -> u64 {
    std::env::var("VERINFER_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// A small seeded generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The synthetic tiny Llama as a SKU file under `dir`.
pub fn synthetic_sku(dir: &Path) -> PathBuf {
    let model = dir.join("synthetic-model");
    verinfer_prover::SynthSpec::tiny_llama()
        .write(&model)
        .unwrap();
    let out = dir.join("synthetic.sku");
    verinfer_prover::sku::build_file(
        &model,
        &out,
        &verinfer_prover::BuildOptions { max_seq: 256 },
    )
    .unwrap();
    out
}
