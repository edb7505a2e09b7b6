//! verinfer-l1 (work in progress).
