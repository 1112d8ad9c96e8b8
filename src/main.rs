//! The `keyward` binary: everything lives in the library; this is only its entry point.

/// mimalloc instead of the system allocator: parsing a large configuration allocates a small
/// string for every YAML event, and the system allocator spent a fifth of `keyward validate`'s
/// time on those (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`, by its place in mimalloc.h's `mi_option_e` (libmimalloc-sys names
/// no constant for it; the test below checks it is the option with the delay's default, 1 s).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Freed memory stays with the allocator for reuse instead of going back to the system a
    // second later: a run frees and allocates hundreds of megabytes from one phase to the next, and
    // the kernel zeroes every page it hands out again (a tenth of a large plan's time). The
    // memory goes back when the process ends; `keyward watch` keeps its largest run's.
    // SAFETY: sets a plain integer option; mimalloc reads it on its next purge.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
    keyward::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets integer options.
        unsafe {
            // The delay's default in mimalloc's options.c; its neighbours hold other defaults.
            assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 1000);
            assert_eq!(libmimalloc_sys::mi_option_get(libmimalloc_sys::mi_option_use_numa_nodes), 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
            assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), -1);
        }
    }
}
