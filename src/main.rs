//! The `keyward` binary: everything lives in the library; this is only its entry point.

/// mimalloc instead of the system allocator: parsing a large configuration allocates a small
/// string for every YAML event, and the system allocator spent a fifth of `keyward validate`'s
/// time on those (BENCHMARKS.md, "Why load + validate was over budget").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keyward::cli::main()
}
