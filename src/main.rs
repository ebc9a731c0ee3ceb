//! The `jobslot` binary: parse the command line, run, map errors to exit codes.

use clap::Parser;

fn main() {
    // Before anything else: a job running as our user must not read our
    // environment or memory through /proc (see runner::make_non_dumpable).
    if let Err(e) = jobslot::runner::make_non_dumpable() {
        eprintln!("warning: cannot make jobslot non-dumpable (PR_SET_DUMPABLE): {e}");
    }
    let cli = jobslot::cli::Cli::parse();
    if cli.prints_and_exits() {
        // SAFETY: restoring the default action of a signal before any thread
        // starts; nothing else in the process depends on SIGPIPE's handling.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match jobslot::cli::run(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}
