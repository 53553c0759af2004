use std::process::ExitCode;

fn main() -> ExitCode {
    sigil::cli::main()
}
