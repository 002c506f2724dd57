//! The `d1vec` binary: a thin shell over the library's command line module.

fn main() -> std::process::ExitCode {
    use clap::Parser;
    d1vec::cli::main_with(d1vec::cli::args::Cli::parse())
}
