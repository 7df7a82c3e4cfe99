use std::process::ExitCode;

fn main() -> ExitCode {
    jetrack::cli::main()
}
