//! The `hashgrad` binary: parses the command line and runs one subcommand (see `cli`).

fn main() -> std::process::ExitCode {
    hashgrad::cli::main()
}
