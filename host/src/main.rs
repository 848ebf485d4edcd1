//! The `pvbuild` command.
//!
//! Subcommands: `plan` (the whole core without Xen). `create`, `destroy`, `list` and
//! `console` join this enum as their host layers land; `-v` (repeatable) raises the log
//! level for all of them.
//!
//! Bad input exits with status 1 and one `error: ...` line on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "pvbuild", version, about = "Xen PV domain builder")]
struct Cli {
    /// More output (-v, -vv, -vvv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse, unpack, solve the layout and build into memory, then print the arrangement
    /// as libxenguest logs it.
    Plan {
        /// Ramdisk (initrd) file; a gzip ramdisk is unpacked as libxenguest does.
        #[arg(long)]
        ramdisk: Option<PathBuf>,
        /// Kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 256)]
        memory: u64,
        /// Number of vcpus.
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The kernel: ELF, gzip-wrapped ELF, bzImage, or 'bin'.
        kernel: PathBuf,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                return fail("no command given (try `pvbuild --help`)");
            }
            // One line: clap's first, without its own "error: " prefix.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            return fail(first.strip_prefix("error: ").unwrap_or(first));
        }
    };
    match cli.command {
        Command::Plan {
            ramdisk,
            cmdline,
            memory,
            vcpus,
            json,
            kernel,
        } => {
            let args = pvbuild::plan::PlanArgs {
                kernel,
                ramdisk,
                cmdline,
                memory_mib: memory,
                vcpus,
            };
            match pvbuild::plan::plan(&args) {
                Ok(p) => {
                    if json {
                        println!("{}", pvbuild::plan::render_json(&p));
                    } else {
                        print!("{}", pvbuild::plan::render_text(&p));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}
