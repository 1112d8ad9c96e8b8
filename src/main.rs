//! The `keyward` binary: everything lives in the library; this is only its entry point.

fn main() -> std::process::ExitCode {
    keyward::cli::main()
}
