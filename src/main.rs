//! Entry point: parse arguments, set up logging, run the command, turn its error into an exit code.

use clap::Parser;

fn main() {
    let cli = dcos_lab::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DCOS_LAB_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if cli.verbose {
            "dcos_lab=debug"
        } else {
            "dcos_lab=info"
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
    match dcos_lab::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message());
            std::process::exit(failure.exit_code());
        }
    }
}
