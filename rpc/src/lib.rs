//! verinfer-rpc (work in progress).
