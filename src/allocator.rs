//! The wasm build's global allocator: one free list per power-of-two size class.
//!
//! Written here rather than taken from a crate because of the package's size budget (issue 11,
//! docs/SIZE.md). Measured in the package: std's dlmalloc was about 1.8 KB gzip more than talc;
//! talc's bins and bookkeeping were 2 836 B of the wasm; lol_alloc's first-fit free list was
//! 1.1 KB gzip smaller than talc, but made `send()` about 30% slower (12.1k against 17.4k
//! sends/s): it walks the free blocks on every allocation. This one is 624 B of the wasm and the
//! package 1 007 B gzip smaller than with talc, with `send()` as fast. Every path is O(1):
//! - a request of `size` bytes aligned to `align` gets a block of 2^k bytes, the smallest power
//!   of two at least `size`, `align` and 8 (the free list's link);
//! - a freed block goes to the head of its class's list (its first word points at the next
//!   one) and an allocation takes the head. Blocks are never split or merged: memory once used
//!   for a class stays with it, which suits a client that reuses the same sizes (the 1 000-cycle
//!   browser test keeps wasm memory flat);
//! - a class without a free block takes fresh memory from a bump pointer at the end of the wasm
//!   memory, which `memory.grow` extends by whole pages;
//! - `realloc` to a size of the same class returns the same block.
//!
//! Blocks are 8-aligned (sizes are multiples of 8, fresh memory starts on a page); a stricter
//! alignment takes the list's head only if it is aligned enough, and fresh memory is aligned up.
//! No memory, or a request over 2 GiB, is a null pointer: never a panic.

/// log2 of the smallest block: 8 bytes.
const MIN_SHIFT: u32 = 3;
/// Classes 0.. are blocks of 8, 16, ... bytes, up to the largest power of two in a `usize`.
const CLASSES: usize = (usize::BITS - MIN_SHIFT) as usize;

/// The class of a request (`k - 3` for the block of 2^k bytes), or None if no block is that large.
fn class_of(size: usize, align: usize) -> Option<usize> {
    let n = size.max(align).max(1 << MIN_SHIFT);
    let k = usize::BITS - (n - 1).leading_zeros();
    (k < usize::BITS).then_some((k - MIN_SHIFT) as usize)
}

/// The bytes of a block of `class`.
fn block_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

/// Where a block of `size` bytes aligned to `align` (a power of two) starts and ends in fresh
/// memory from `next`, or None past the address space.
fn place(next: usize, size: usize, align: usize) -> Option<(usize, usize)> {
    let start = next.checked_add(align - 1)? & !(align - 1);
    Some((start, start.checked_add(size)?))
}

#[cfg(all(target_arch = "wasm32", not(test)))]
pub use heap::Allocator;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod heap {
    use super::{block_size, class_of, place, CLASSES};
    use core::alloc::{GlobalAlloc, Layout};
    use core::arch::wasm32::{memory_grow, memory_size};
    use core::cell::UnsafeCell;
    use core::ptr::{copy_nonoverlapping, null_mut};

    const PAGE: usize = 65_536;

    struct Heap {
        /// The head of each class's free list (null: empty).
        free: [*mut u8; CLASSES],
        /// Fresh memory: `next..end`; `end` is the end of the wasm memory when we last grew it.
        next: usize,
        end: usize,
    }

    pub struct Allocator(UnsafeCell<Heap>);

    // SAFETY: the wasm32 module runs on one thread (a page or a worker, no shared memory, no
    // `atomics`), so the heap is never reached from two threads at once; and no method calls
    // another while it holds the `&mut Heap`.
    unsafe impl Sync for Allocator {}

    impl Allocator {
        pub const fn new() -> Self {
            Self(UnsafeCell::new(Heap { free: [null_mut(); CLASSES], next: 0, end: 0 }))
        }
    }

    impl Heap {
        fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
            let Some(class) = class_of(size, align) else { return null_mut() };
            let Some(head) = self.free.get_mut(class) else { return null_mut() };
            let block = *head;
            if !block.is_null() && block as usize & (align - 1) == 0 {
                // SAFETY: a block on a list is free, ours and at least 8 bytes, 8-aligned; its
                // first word is the next block of the list.
                *head = unsafe { *block.cast::<*mut u8>() };
                return block;
            }
            self.bump(block_size(class), align)
        }

        fn bump(&mut self, size: usize, align: usize) -> *mut u8 {
            let Some((mut start, mut stop)) = place(self.next, size, align) else { return null_mut() };
            if stop > self.end {
                let top = memory_size::<0>().wrapping_mul(PAGE);
                if top != self.end {
                    // The first allocation, or memory grown by someone else: start at its end.
                    self.end = top;
                    let Some(fresh) = place(top, size, align) else { return null_mut() };
                    (start, stop) = fresh;
                }
                let pages = (stop - self.end).div_ceil(PAGE);
                if memory_grow::<0>(pages) == usize::MAX {
                    return null_mut();
                }
                self.end = self.end.wrapping_add(pages.wrapping_mul(PAGE));
            }
            self.next = stop;
            start as *mut u8
        }
    }

    // SAFETY: blocks come from memory that only this allocator hands out (the wasm memory past
    // its end when first grown), each block at most once until it is freed; a block is at least
    // the size and alignment its layout asks for (`class_of`, `alloc`).
    unsafe impl GlobalAlloc for Allocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: one thread, no re-entry (see `Sync` above).
            let heap = unsafe { &mut *self.0.get() };
            heap.alloc(layout.size(), layout.align())
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as in `alloc`.
            let heap = unsafe { &mut *self.0.get() };
            if let Some(head) = class_of(layout.size(), layout.align()).and_then(|c| heap.free.get_mut(c)) {
                // SAFETY: `ptr` is a block of this class that the caller gives back.
                unsafe { *ptr.cast::<*mut u8>() = *head };
                *head = ptr;
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let align = layout.align();
            if class_of(new_size, align) == class_of(layout.size(), align) {
                return ptr;
            }
            // SAFETY: `new_size` is non-zero and fits a layout (GlobalAlloc::realloc's contract).
            let new = unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, align)) };
            if !new.is_null() {
                // SAFETY: two live blocks, each at least the bytes copied.
                unsafe {
                    copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gets_the_smallest_power_of_two_that_holds_it() {
        assert_eq!(class_of(1, 1), Some(0));
        assert_eq!(class_of(8, 8), Some(0));
        assert_eq!(class_of(9, 1), Some(1));
        assert_eq!(class_of(16, 4), Some(1));
        assert_eq!(class_of(17, 8), Some(2));
        assert_eq!(class_of(65_536, 8), Some(13));
        assert_eq!(class_of(65_537, 8), Some(14));
        for size in 1..5000 {
            let c = class_of(size, 1).unwrap();
            assert!(block_size(c) >= size && (c == 0 || block_size(c - 1) < size), "{size}");
        }
    }

    #[test]
    fn an_alignment_larger_than_the_size_sets_the_class() {
        assert_eq!(class_of(4, 64), Some(3));
        assert_eq!(block_size(class_of(24, 128).unwrap()), 128);
    }

    #[test]
    fn the_largest_class_is_half_the_address_space_and_beyond_is_refused() {
        let top = 1usize << (usize::BITS - 1);
        assert_eq!(class_of(top, 8), Some(CLASSES - 1));
        assert_eq!(block_size(CLASSES - 1), top);
        assert_eq!(class_of(top + 1, 8), None);
        assert_eq!(class_of(usize::MAX, 1), None);
    }

    #[test]
    fn fresh_blocks_are_aligned_up_and_overflow_is_refused() {
        assert_eq!(place(0, 8, 8), Some((0, 8)));
        assert_eq!(place(8, 16, 8), Some((8, 24)));
        assert_eq!(place(8, 64, 64), Some((64, 128)));
        assert_eq!(place(65_536, 32, 32), Some((65_536, 65_568)));
        assert_eq!(place(usize::MAX - 3, 8, 8), None);
        assert_eq!(place(usize::MAX - 15, 16, 8), None);
    }
}
