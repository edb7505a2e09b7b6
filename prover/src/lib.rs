//! verinfer-prover (work in progress).
