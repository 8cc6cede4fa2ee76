//! Free space on the store's volume: the reserve below which appends are refused, and the file's size.
//!
//! The decisions are pure functions ([`reserve`], [`next_low`]) so that they are pinned by unit tests; the
//! only system calls are `statvfs` on the data directory and the database file's metadata.

use std::path::Path;

/// Default reserve: 64 MiB, or 5 % of the volume when that is smaller.
pub const DEFAULT_RESERVE_BYTES: u64 = 64 << 20;

/// What `statvfs` says about the volume holding the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Volume {
    /// Bytes an unprivileged writer can still use.
    pub free: u64,
    /// Size of the volume.
    pub total: u64,
}

/// The volume holding `dir`, or `None` if it cannot be asked (the store then never refuses for space).
pub fn volume(dir: &Path) -> Option<Volume> {
    let st = rustix::fs::statvfs(dir).ok()?;
    let unit = st.f_frsize.max(1);
    Some(Volume {
        free: st.f_bavail.saturating_mul(unit),
        total: st.f_blocks.saturating_mul(unit),
    })
}

/// Size of the database file (0 if it cannot be read).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The free space to keep: the configured value, else 64 MiB or 5 % of the volume, whichever is smaller.
pub fn reserve(configured: Option<u64>, total: u64) -> u64 {
    configured.unwrap_or_else(|| DEFAULT_RESERVE_BYTES.min(total / 20))
}

/// Hysteresis: once below the reserve, appends resume only when this much more than the reserve is free,
/// so that a volume hovering at the mark does not flap (a quarter of the reserve, at most 16 MiB).
pub fn hysteresis(reserve: u64) -> u64 {
    (reserve / 4).min(16 << 20)
}

/// Whether appends are refused after a measurement of `free` bytes, given the previous state.
pub fn next_low(was_low: bool, free: u64, reserve: u64) -> bool {
    if was_low {
        free < reserve.saturating_add(hysteresis(reserve))
    } else {
        free < reserve
    }
}

/// Whether an I/O error means the volume (or the user's quota) is full.
pub fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_reserve_is_the_smaller_of_64_mib_and_5_percent() {
        assert_eq!(reserve(None, 100 << 30), 64 << 20);
        assert_eq!(reserve(None, 24 << 20), (24 << 20) / 20);
        assert_eq!(reserve(Some(0), 24 << 20), 0);
        assert_eq!(reserve(Some(5), 24 << 20), 5);
    }

    #[test]
    fn low_space_has_hysteresis() {
        let r = 1000;
        assert!(!next_low(false, 1000, r));
        assert!(next_low(false, 999, r));
        // Once low, it takes reserve + a quarter to come back.
        assert!(next_low(true, 1000, r));
        assert!(next_low(true, 1249, r));
        assert!(!next_low(true, 1250, r));
        assert_eq!(hysteresis(1 << 30), 16 << 20);
        // A zero reserve never refuses.
        assert!(!next_low(false, 0, 0));
        assert!(!next_low(true, 0, 0));
    }

    #[test]
    fn enospc_and_quota_are_full() {
        assert!(is_full(&std::io::Error::from_raw_os_error(28)));
        assert!(is_full(&std::io::Error::from_raw_os_error(122)));
        assert!(!is_full(&std::io::Error::from_raw_os_error(5)));
        assert!(!is_full(&std::io::Error::other("x")));
    }

    #[test]
    fn volume_of_a_real_directory() {
        let v = volume(Path::new(".")).expect("statvfs");
        assert!(v.total > 0 && v.free <= v.total);
    }
}
