fn main() -> std::process::ExitCode {
    amt_agent::cli::run(std::env::args_os().collect())
}
