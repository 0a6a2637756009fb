//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): the kernel picks a buffer
//! for a receive only when bytes arrive, so an idle connection holds no buffer (the epoll
//! engine's property, kept), and the worker's memory for data in flight is bounded by the ring.
#![allow(unsafe_code)] // mmap/munmap and the shared ring entries; SAFETY comments on each block

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// The buffers of one worker's ring, and the ring the kernel takes them from.
pub(super) struct BufRing {
    entries: *mut BufRingEntry,
    entries_len: usize,
    mem: *mut u8,
    mem_len: usize,
    count: u16,
    /// Buffers handed to the kernel so far (ids `0..provided`); more are added on demand, so
    /// pages of buffers never needed are never touched.
    provided: u16,
    size: u32,
    /// Our copy of the ring's tail (published with a release store).
    tail: u16,
    /// Buffers the kernel may pick now.
    free: u32,
    /// The buffer group id the receives name.
    pub(super) group: u16,
}

fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl BufRing {
    /// Room for `count` (a power of two) buffers of `size` bytes, registered with `ring` as
    /// `group`, the first `initial` of them given to the kernel ([`BufRing::grow`] adds more).
    /// Pages are touched only when the kernel first writes a buffer.
    pub(super) fn new(
        ring: &IoUring,
        count: u16,
        initial: u16,
        size: u32,
        group: u16,
    ) -> io::Result<BufRing> {
        assert!(count.is_power_of_two());
        let entries_len = (count as usize * std::mem::size_of::<BufRingEntry>()).max(4096);
        let mem_len = count as usize * size as usize;
        let entries = map(entries_len)?.cast::<BufRingEntry>();
        let mem = match map(mem_len) {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: mapped just above with this length.
                unsafe { libc::munmap(entries.cast(), entries_len) };
                return Err(e);
            }
        };
        let mut r = BufRing {
            entries,
            entries_len,
            mem,
            mem_len,
            count,
            provided: 0,
            size,
            tail: 0,
            free: 0,
            group,
        };
        // SAFETY: `entries` is a page-aligned mapping of `count` entries that lives as long as
        // `r`; the ring is unregistered (the ring fd closed) before `r` is dropped (field order
        // in the worker).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, group, 0)?
        };
        for _ in 0..initial.min(count) {
            r.grow();
        }
        Ok(r)
    }

    /// Gives the kernel one more buffer, if the ring has room for one (`false`: all are out).
    pub(super) fn grow(&mut self) -> bool {
        if self.provided == self.count {
            return false;
        }
        self.provided += 1;
        self.give_back(self.provided - 1);
        true
    }

    /// Bytes per buffer.
    pub(super) fn size(&self) -> u32 {
        self.size
    }

    /// Buffers the kernel may pick now.
    pub(super) fn free(&self) -> u32 {
        self.free
    }

    /// The start of buffer `bid`.
    pub(super) fn ptr(&self, bid: u16) -> *mut u8 {
        debug_assert!(bid < self.count);
        // SAFETY: in bounds of the mapping (bid < count).
        unsafe { self.mem.add(bid as usize * self.size as usize) }
    }

    /// The first `len` bytes of buffer `bid`.
    pub(super) fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let len = len.min(self.size as usize);
        // SAFETY: in bounds; the kernel wrote them before posting the completion that gave us
        // `bid`, and it does not touch the buffer again until we give it back.
        unsafe { std::slice::from_raw_parts(self.ptr(bid), len) }
    }

    fn put(&mut self, bid: u16) {
        let mask = self.count - 1;
        // SAFETY: `tail & mask` < count entries of the mapping; the kernel reads entries only
        // up to the published tail, and this one is past it.
        let e = unsafe { &mut *self.entries.add((self.tail & mask) as usize) };
        e.set_addr(self.ptr(bid) as u64);
        e.set_len(self.size);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.free += 1;
    }

    fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's `resv`, which the kernel reads
        // with an acquire load; ours is the only writer.
        let tail = unsafe { &*(BufRingEntry::tail(self.entries).cast::<AtomicU16>()) };
        tail.store(self.tail, Ordering::Release);
    }

    /// The kernel picked a buffer (a completion carried its id).
    pub(super) fn taken(&mut self) {
        self.free = self.free.saturating_sub(1);
    }

    /// Gives buffer `bid` back to the kernel.
    pub(super) fn give_back(&mut self, bid: u16) {
        self.put(bid);
        self.publish();
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both were mapped by `new` with these lengths; the ring that used them is gone.
        unsafe {
            libc::munmap(self.mem.cast(), self.mem_len);
            libc::munmap(self.entries.cast(), self.entries_len);
        }
    }
}
