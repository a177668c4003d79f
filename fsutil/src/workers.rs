//! Sizing of the worker pools used for walking and hashing.

use std::num::NonZeroUsize;

/// `per_core` threads per available core, at most `cap`. Walking is mostly
/// waiting on metadata syscalls, so it uses more threads than there are cores;
/// hashing is CPU-bound and uses one per core.
pub(crate) fn count(cap: usize, per_core: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    (cores * per_core).clamp(1, cap.max(1))
}
