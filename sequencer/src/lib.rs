//! verinfer-sequencer (work in progress).
