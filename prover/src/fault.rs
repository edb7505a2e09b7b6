//! Deliberate faults, for end-to-end tests of the fraud path only: the cheating worker of the
//! devnet and of `e2e/` is the real worker binary with one of these injected. This module
//! exists only with the cargo feature `fault-injection`, which no normal build enables (the
//! binary that has it is a separate target, `verinfer-faulty`).
//!
//! A fault changes what the engine computes, not only what it reports: the wrong value flows
//! into every later step, the trace commits to it and every opening the worker serves agrees
//! with it, as a cheater that is consistent with itself would be.

/// One way to cheat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// +1 on the first entry of layer 0's `gate_proj` output, every round: a wrong GEMM entry.
    GemmEntry,
}

impl Fault {
    /// Parses a `--fault` value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gemm-entry" => Some(Fault::GemmEntry),
            _ => None,
        }
    }

    /// Applies the fault to the int32 output of GEMM `what` of layer `layer`.
    pub(crate) fn on_gemm(self, layer: usize, what: &str, out: &mut [i32]) {
        match self {
            Fault::GemmEntry if layer == 0 && what == "gate_proj" => {
                if let Some(v) = out.first_mut() {
                    *v = v.wrapping_add(1);
                }
            }
            Fault::GemmEntry => {}
        }
    }
}
