//! Large CPU blocks kept for reuse while changedet computes in a Python process. The CLI gets
//! this from jemalloc, which it links as the process's malloc; a Python extension cannot replace
//! the interpreter's malloc, and glibc's gives every block over 32 MiB back to the kernel on free
//! (mmap/munmap), so each forward pass faulted its largest feature maps in again. While a
//! changedet computation runs (`Reuse`), libtorch takes CPU memory through the shim's c10
//! allocator from here: blocks of 1 MiB and more are kept by size when freed (at most
//! `KEPT_BYTES`) and handed out again for the same size; smaller ones go straight to malloc.

use std::alloc::{Layout, alloc, dealloc};
use std::collections::HashMap;
use std::sync::Mutex;

/// c10's alignment for CPU tensors; also the header that records a block's size.
const ALIGN: usize = 64;
const SMALLEST_KEPT: usize = 1 << 20;
const KEPT_BYTES: usize = 4 << 30;

struct Kept {
    by_size: HashMap<usize, Vec<usize>>,
    bytes: usize,
}

static KEPT: Mutex<Option<Kept>> = Mutex::new(None);
/// Computations running now: the allocator is switched on by the first and off by the last.
static RUNNING: Mutex<usize> = Mutex::new(0);

unsafe extern "C" {
    fn changedet_reuse_cpu_blocks(on: i32);
}

/// While alive, libtorch's CPU tensors come from the kept blocks.
pub struct Reuse;

impl Reuse {
    pub fn start() -> Reuse {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if *running == 0 {
            // SAFETY: sets c10's CPU allocator pointer; the shim's allocator lives for the process.
            unsafe { changedet_reuse_cpu_blocks(1) };
        }
        *running += 1;
        Reuse
    }
}

impl Drop for Reuse {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        if *running == 0 {
            // SAFETY: as in `start`; blocks handed out keep their deleter, `changedet_block_give`.
            unsafe { changedet_reuse_cpu_blocks(0) };
        }
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size + ALIGN, ALIGN).expect("a block size below isize::MAX")
}

/// A block of at least `bytes`, 64-byte aligned; null if memory is exhausted.
#[unsafe(no_mangle)]
pub extern "C" fn changedet_block_take(bytes: usize) -> *mut u8 {
    let size = if bytes >= SMALLEST_KEPT { bytes.next_multiple_of(4096) } else { bytes };
    let reused = (size >= SMALLEST_KEPT).then(|| {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        let kept = kept.as_mut()?;
        let block = kept.by_size.get_mut(&size)?.pop()?;
        kept.bytes -= size;
        Some(block as *mut u8)
    });
    if let Some(Some(block)) = reused {
        return block;
    }
    // SAFETY: the layout has a non-zero size; the header before the block records its size.
    unsafe {
        let start = alloc(layout(size));
        if start.is_null() {
            return start;
        }
        start.cast::<usize>().write(size);
        start.add(ALIGN)
    }
}

/// Takes back a block from `changedet_block_take`: kept for reuse, or freed.
#[unsafe(no_mangle)]
pub extern "C" fn changedet_block_give(block: *mut u8) {
    if block.is_null() {
        return;
    }
    // SAFETY: `block` came from `changedet_block_take`, ALIGN bytes after its header.
    let (start, size) = unsafe {
        let start = block.sub(ALIGN);
        (start, start.cast::<usize>().read())
    };
    if size >= SMALLEST_KEPT {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        let kept = kept.get_or_insert_with(|| Kept { by_size: HashMap::new(), bytes: 0 });
        if kept.bytes + size <= KEPT_BYTES {
            kept.by_size.entry(size).or_default().push(block as usize);
            kept.bytes += size;
            return;
        }
    }
    // SAFETY: allocated in `changedet_block_take` with this layout.
    unsafe { dealloc(start, layout(size)) };
}
