//! Transparent huge pages for the in-memory directory (Linux).
//!
//! At 100,000 users a role lookup reads a few cache lines scattered over ~150 MB (the key map,
//! the user's slot, its view), and each of those reads is also a TLB miss: with 4 KiB pages the
//! processor walks the page tables for every one, and in a virtual machine that walk is itself
//! a chain of memory reads. Backing that memory with 2 MiB pages removes most of those walks
//! (measured in BENCHMARKS.md).
//!
//! Where the kernel's THP mode is `madvise` (the common default), memory gets huge pages only
//! when asked for, so after loading the directory the server asks: `MADV_HUGEPAGE` on its
//! anonymous writable mappings (so that the kernel's background collapsing, and new faults in
//! them, use huge pages) and `MADV_COLLAPSE` (Linux 6.1 and later) to collapse what is already
//! there at once. Failures change nothing but speed: each is counted, not fatal. `--huge-pages
//! false` turns it off.

/// The 2 MiB-aligned part of each anonymous, private, writable mapping of at least 2 MiB in a
/// `/proc/self/maps` text: what may be backed by huge pages.
pub fn candidates(maps: &str) -> Vec<(usize, usize)> {
    const HUGE: usize = 2 << 20;
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let _offset = fields.next()?;
            let _device = fields.next()?;
            let inode = fields.next()?;
            let path = fields.next();
            // anonymous memory: no file (inode 0), and either no name or the brk heap; not
            // stacks, vdso or other named special mappings
            let anonymous = inode == "0" && matches!(path, None | Some("[heap]"));
            if !anonymous || !perms.starts_with("rw") || !perms.ends_with('p') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            let start = start.checked_add(HUGE - 1)? & !(HUGE - 1);
            let end = end & !(HUGE - 1);
            (end > start).then_some((start, end))
        })
        .collect()
}

/// What [`advise`] did, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Advised {
    /// Marked `MADV_HUGEPAGE`.
    pub advised: usize,
    /// Collapsed into huge pages now (`MADV_COLLAPSE`).
    pub collapsed: usize,
    /// Ranges the kernel refused either request for (an old kernel, THP set to `never`, no
    /// free huge pages).
    pub refused: usize,
}

/// Ask for huge pages for the process's anonymous memory as it is now (see the module
/// documentation).
#[cfg(target_os = "linux")]
pub fn advise() -> Advised {
    // not in every libc release yet (include/uapi/asm-generic/mman-common.h)
    const MADV_COLLAPSE: libc::c_int = 25;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Advised::default();
    };
    let mut out = Advised::default();
    for (start, end) in candidates(&maps) {
        let len = end - start;
        let addr = start as *mut libc::c_void;
        // SAFETY: madvise only changes how the kernel backs pages of this process's own
        // anonymous mappings (read from /proc/self/maps just now); it never changes their
        // contents, and a range that is no longer mapped makes it fail with ENOMEM.
        let advised = unsafe { libc::madvise(addr, len, libc::MADV_HUGEPAGE) } == 0;
        // SAFETY: as above; MADV_COLLAPSE copies the pages' contents into huge pages.
        let collapsed = unsafe { libc::madvise(addr, len, MADV_COLLAPSE) } == 0;
        if advised {
            out.advised += len;
        }
        if collapsed {
            out.collapsed += len;
        }
        if !advised || !collapsed {
            out.refused += 1;
        }
    }
    out
}

#[cfg(not(target_os = "linux"))]
pub fn advise() -> Advised {
    Advised::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_anonymous_private_writable_memory_aligned_to_2_mib() {
        let maps = "\
55d4c0a00000-55d4c0b00000 r--p 00000000 fd:01 1234  /usr/local/bin/rolecall
55d4c2000000-55d4c8100000 rw-p 00000000 00:00 0     [heap]
7f0000100000-7f0004300000 rw-p 00000000 00:00 0
7f0004300000-7f0004400000 rw-p 00000000 00:00 0
7f0005000000-7f0009000000 ---p 00000000 00:00 0
7f000a000000-7f000c000000 rw-s 00000000 00:05 77    /dev/zero (deleted)
7f000d000000-7f000f000000 rw-p 00000000 fd:01 99    /var/lib/rolecall/rolecall.db-shm
7ffc1e000000-7ffc1e600000 rw-p 00000000 00:00 0     [stack]
garbage
";
        assert_eq!(
            candidates(maps),
            vec![
                // [heap]: 0x...c2000000 is aligned; the end rounds down to 0x...c8000000
                (0x55d4_c200_0000, 0x55d4_c800_0000),
                // an anonymous mapping: the start rounds up to 0x...00200000
                (0x7f00_0020_0000, 0x7f00_0420_0000),
            ]
        );
    }

    /// On Linux the call asks for every candidate range (an 8 MiB buffer makes one), counts
    /// whole 2 MiB pages, and leaves the memory's contents as they were.
    #[cfg(target_os = "linux")]
    #[test]
    fn advising_counts_whole_huge_pages_and_keeps_contents() {
        let big: Vec<u8> = (0..8usize << 20).map(|i| (i % 251) as u8).collect();
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        assert!(!candidates(&maps).is_empty());
        let a = advise();
        assert_eq!(a.advised % (2 << 20), 0);
        assert_eq!(a.collapsed % (2 << 20), 0);
        assert!(a.advised > 0 || a.refused > 0, "{a:?}");
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            // the buffer's aligned part at least (6 of its 8 MiB)
            assert!(a.advised >= 6 << 20, "{a:?}");
        }
        assert!(big.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
}
