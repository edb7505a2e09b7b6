//! verinfer-gpu (work in progress).
