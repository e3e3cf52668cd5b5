//! The `weft` binary: parse the command line, run the subcommand, print
//! errors with their causes, exit with a code a script can act on.

mod api;
mod args;
mod client;
mod commands;
mod invoker;
mod load;
mod render;
mod swapper;
mod telemetry;
mod watch;

use std::process::ExitCode;

use clap::Parser;

/// The engine allocates briskly on every transition (JSON values, wasmtime
/// stores); mimalloc keeps that cheaper than the system allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes.
pub mod exit {
    /// The command did what was asked (for `run`: the instance succeeded).
    pub const OK: u8 = 0;
    /// The instance ended in a `fail` state.
    pub const FAILED: u8 = 1;
    /// Bad input or a command that could not be carried out.
    pub const ERROR: u8 = 2;
    /// The instance is parked, waiting for an operator.
    pub const PARKED: u8 = 3;
    /// The instance waits in a wait state for a signal or a timer.
    pub const WAITING: u8 = 4;
}

fn main() -> ExitCode {
    quiet_library_backtraces();
    let cli = args::Cli::parse();
    let telemetry = match telemetry::init(cli.log_format == "json", cli.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // Store reads and the interpreter run on the blocking pool. Expressions
    // have a stack budget of their own (1 MiB, measured from where they
    // start): 8 MiB threads leave room. The pool is capped: tokio's default
    // of 512 threads, each with its own allocator heap, grew the engine
    // holding 100,000 idle instances from 54 MB to 422 MB resident (32
    // threads: 98 MB); these are short calls on 2 cores.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .max_blocking_threads(8)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = match runtime.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::ERROR
        }
    };
    drop(runtime);
    telemetry.shutdown();
    ExitCode::from(code)
}

/// wasmtime builds an error value while dropping every store; with
/// `RUST_BACKTRACE=1` in the environment each one captured a backtrace, which
/// tripled the cost of an invocation. Library backtraces stay off unless
/// `RUST_LIB_BACKTRACE` is set explicitly; panics still honour
/// `RUST_BACKTRACE`.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in `main`, before any other thread
        // exists, so nothing can be reading the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    }
}
