//! The loop budget under a device's loop limit (`GpuContext::loop_limit`): the share of it
//! the host plans with, class blocks, and the refusal of a kernel that needs more. The
//! counts of each kernel's loops, and the plan that keeps them within the budget, are
//! `loops.rs`.

use crate::error::{Error, Result};

/// The share of a device's loop limit that the host plans to use (three quarters): the
/// counts below are upper bounds of the kernels' loops, and a driver may count a few more
/// of its own.
pub fn loop_budget(limit: u32) -> u64 {
    u64::from(limit) / 4 * 3
}

/// Classes per block when `k` classes are cut into `blocks` blocks: a multiple of 4 from 4
/// classes on (the kernel then takes them four at a time), else `k`.
pub(super) fn class_block(k: u32, blocks: u32) -> u32 {
    let kb = k.div_ceil(blocks);
    if kb >= 4 { kb.next_multiple_of(4) } else { kb }
}

/// Fails with [`Error::LoopLimit`] when `needed` iterations per invocation exceed the
/// budget of `limit` (no limit: never).
pub fn check_loops(what: impl FnOnce() -> String, needed: u64, limit: Option<u32>) -> Result<()> {
    match limit {
        Some(limit) if needed > loop_budget(limit) => Err(Error::LoopLimit {
            what: what(),
            needed,
            limit: u64::from(limit),
        }),
        _ => Ok(()),
    }
}
