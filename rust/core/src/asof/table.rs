//! The group table: open addressing (linear probing) from a 64-bit tag to a dense group id,
//! with prefetching so the lookups of a batch overlap their cache misses.

use super::NONE;

#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub(super) tag: u64,
    pub(super) gid: u32,
    /// Free for the user (the row grouping keeps the key's arena offset here).
    pub(super) aux: u32,
}

const EMPTY_ENTRY: Entry = Entry {
    tag: 0,
    gid: NONE,
    aux: 0,
};

/// Rows looked up per batch: the table lines of a batch are prefetched together so their
/// cache misses overlap.
pub(super) const BATCH: usize = 16;

/// Hints the CPU to bring `p`'s cache line in (a no-op off x86-64).
#[inline(always)]
pub(super) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and has no other effect, whatever
    // the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Open-addressing (linear probing) table from a 64-bit tag to a group id. The caller
/// supplies the hash and, for tags that are hashes rather than values, an exact equality
/// check.
pub(super) struct GroupTable {
    slots: Vec<Entry>,
    shift: u32,
    pub(super) len: usize,
}

impl GroupTable {
    pub(super) fn with_capacity(n: usize) -> Self {
        let bits = (n.max(8) * 2).next_power_of_two().trailing_zeros();
        GroupTable {
            slots: vec![EMPTY_ENTRY; 1 << bits],
            shift: 64 - bits,
            len: 0,
        }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize
    }

    /// The first entry on `hash`'s probe path.
    #[inline]
    pub(super) fn first(&self, hash: u64) -> Entry {
        self.slots[self.home(hash)]
    }

    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        prefetch(self.slots.as_ptr().wrapping_add(self.home(hash)));
    }

    #[inline]
    pub(super) fn find(&self, hash: u64, tag: u64, mut eq: impl FnMut(Entry) -> bool) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let e = self.slots[i];
            if e.gid == NONE {
                return NONE;
            }
            if e.tag == tag && eq(e) {
                return e.gid;
            }
            i = (i + 1) & mask;
        }
    }

    /// The group id of `tag`, inserting it with id `self.len` (and `aux`) if absent.
    #[inline]
    pub(super) fn find_or_insert(
        &mut self,
        hash: u64,
        tag: u64,
        aux: u32,
        mut eq: impl FnMut(Entry) -> bool,
        rehash: impl Fn(u64) -> u64,
    ) -> u32 {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(rehash);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let e = self.slots[i];
            if e.gid == NONE {
                let gid = self.len as u32;
                self.slots[i] = Entry { tag, gid, aux };
                self.len += 1;
                return gid;
            }
            if e.tag == tag && eq(e) {
                return e.gid;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self, rehash: impl Fn(u64) -> u64) {
        let bits = (self.slots.len() * 2).trailing_zeros();
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_ENTRY; 1 << bits]);
        self.shift = 64 - bits;
        let mask = self.slots.len() - 1;
        for e in old.into_iter().filter(|e| e.gid != NONE) {
            let mut i = self.home(rehash(e.tag));
            while self.slots[i].gid != NONE {
                i = (i + 1) & mask;
            }
            self.slots[i] = e;
        }
    }
}
