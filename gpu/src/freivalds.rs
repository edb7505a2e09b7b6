//! Freivalds audits (in progress).
