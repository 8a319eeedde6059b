use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ftps_sync::cli::Cli::parse();
    let verbose = cli.verbose;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(71);
        }
    };
    match runtime.block_on(ftps_sync::app::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            if verbose > 0 {
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    eprintln!("  caused by: {s}");
                    source = s.source();
                }
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
