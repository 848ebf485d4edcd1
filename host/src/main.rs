//! The `pvbuild` command.
//!
//! Subcommands: `plan` (the whole core without Xen), `create`, `destroy`, `list` and
//! `console` (as xl's); `-v` (repeatable, xl's levels: see [`pvbuild::support::log`]) raises
//! the log level for all of them.
//!
//! Bad input exits with status 1 and one `error: ...` line on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pvbuild",
    version,
    about = "Xen domain builder (PV, PVH and HVM guests), xl-compatible"
)]
struct Cli {
    /// More output, with xl's levels: -v adds the builder's detail (libxenguest's
    /// `domainbuilder: detail:` and libelf's `xc: detail:` lines, as `xl -v create` prints
    /// them) and pvbuild's notes; -vv and -vvv add verbose and debug lines.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: `Create`'s many flags are not worth a box.
// `defer`: a subcommand's arguments are built only when that subcommand is parsed (or its help,
// or the manuals, are asked for), not every subcommand's at every start (issue 17: in a PV dom0
// each heap page the parser touches is a page fault through Xen).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
        /// Guest memory, in xl's size syntax (`256`, `256m`, `1g`; no unit means MiB): 1 MiB
        /// to 16 GiB (the image is built in this process). The default is xl's (libxl's 32 MiB).
        #[arg(long, default_value = "32", value_parser = mib)]
        memory: u64,
        /// Number of vcpus, 1 to 128.
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The guest type: `pv`, `pvh` (the PVH layout, ACPI tables and start info, in
        /// libxenguest's log lines, or with --json as JSON), or `hvm` (KERNEL is then the
        /// firmware, hvmloader, with Debian's SeaBIOS as its module; --memory is the guest's
        /// RAM, xl's `memory` less `videoram`; no ramdisk, command line or JSON).
        #[arg(long = "type", default_value = "pv", value_parser = ["pv", "pvh", "hvm"])]
        guest_type: String,
        /// The kernel: ELF, gzip-wrapped ELF, bzImage, or 'bin' (hvmloader for --type hvm).
        kernel: PathBuf,
    },
    /// Create a domain (PV, PVH or HVM: the config's `type`) from flags and/or an xl config
    /// file, and start it.
    Create {
        /// An xl config file (name, kernel, ramdisk, extra/cmdline/root, memory, vcpus, ...),
        /// then `KEY=VALUE` settings appended to it as xl appends them (a later setting wins:
        /// `memory=512 'extra="console=hvc0"'`). A config on the command line alone: `/dev/null`
        /// or no file.
        #[arg(value_name = "CONFIG | KEY=VALUE")]
        args: Vec<String>,
        /// The config file (xl's `-f`, `--defconfig`).
        #[arg(short = 'f', long = "defconfig", value_name = "FILE")]
        defconfig: Option<PathBuf>,
        /// Dry run (xl's `-n`): print the resolved configuration as JSON and stop, without
        /// reading the kernel or touching Xen.
        #[arg(short = 'n', long = "dryrun")]
        dry_run: bool,
        /// Print the resolved configuration as JSON on stderr, then create (xl's `-d`).
        #[arg(short = 'd')]
        debug: bool,
        /// No progress lines ("Parsing config from ..."; xl's `-q`).
        #[arg(short = 'q', long = "quiet")]
        quiet: bool,
        /// Stay in the foreground as the guest's monitor, acting on its shutdown (xl's `-F`;
        /// the same as --wait).
        #[arg(short = 'F')]
        foreground: bool,
        /// Domain name.
        #[arg(long)]
        name: Option<String>,
        /// The kernel: ELF, gzip-wrapped ELF, bzImage, or 'bin'.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// Ramdisk (initrd) file.
        #[arg(long)]
        ramdisk: Option<PathBuf>,
        /// Kernel command line.
        #[arg(long)]
        cmdline: Option<String>,
        /// Memory, in xl's size syntax (`128`, `128m`, `1g`; no unit means MiB), 1 MiB to
        /// 16 TiB; overrides the config's `memory`. Without either, xl's default (libxl's
        /// 32 MiB).
        #[arg(long, value_parser = mib)]
        memory: Option<u64>,
        /// Number of vcpus, 1 to 128 (overrides the config's `vcpus`; default 1).
        #[arg(long)]
        vcpus: Option<u32>,
        /// Leave the domain paused.
        #[arg(short = 'p')]
        paused: bool,
        /// Attach to the console after creating.
        #[arg(short = 'c')]
        console: bool,
        /// Wait for the guest to shut down, print the reason, and apply on_poweroff etc.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
        /// Test only: make this step fail (to prove it is undone); `list` prints the steps.
        #[arg(long, hide = true)]
        fail_at: Option<String>,
        /// Do not leave a monitor in the background to act on the guest's shutdown (xl's -e).
        #[arg(short = 'e', long = "no-monitor")]
        no_monitor: bool,
        /// Internal: be the background monitor of this domain, made by the same arguments.
        #[arg(long, hide = true)]
        adopt: Option<u16>,
        /// Run this bootloader (e.g. pygrub) on the first disk to get the kernel, ramdisk
        /// and command line.
        #[arg(long)]
        bootloader: Option<String>,
        /// An argument for the bootloader (repeatable; replaces `bootloader_args`).
        #[arg(long = "bootloader-arg", allow_hyphen_values = true)]
        bootloader_arg: Vec<String>,
        /// A disk for the guest, as an xl disk spec (e.g. `/srv/guest.img,raw,xvda,w`);
        /// repeatable, replaces the config's `disk` list. The first is the bootloader's.
        #[arg(long)]
        disk: Vec<String>,
        /// The QEMU that serves the disks (default /usr/libexec/xen-qemu-system-i386).
        #[arg(long)]
        device_model: Option<PathBuf>,
        /// A network interface, as an xl vif spec (e.g. `bridge=xenbr0,mac=00:16:3e:01:02:03`);
        /// repeatable, replaces the config's `vif` list.
        #[arg(long)]
        vif: Vec<String>,
        /// Kill the bootloader after this many seconds, with or without -c (default 60).
        #[arg(long)]
        bootloader_timeout: Option<u64>,
        /// The largest kernel or ramdisk the bootloader may extract, in xl's size syntax
        /// (default 128m, pygrub's own bound).
        #[arg(long, value_name = "SIZE", value_parser = bytes)]
        bootloader_max_size: Option<u64>,
        /// Run the bootloader as this user (overrides `bootloader_user`).
        #[arg(long, value_name = "USER")]
        bootloader_user: Option<String>,
        /// Run the bootloader as root, unrestricted (`bootloader_restrict = 0`); the
        /// LIBXL_BOOTLOADER_RESTRICT and LIBXL_BOOTLOADER_USER variables still restrict it.
        #[arg(long)]
        bootloader_as_root: bool,
        /// Neither read nor write the cache of unpacked kernels (/var/cache/pvbuild/kernels,
        /// root's only): unpack a compressed kernel every time.
        #[arg(long)]
        no_cache: bool,
    },
    /// Destroy a domain (by id or name) and remove its xenstore entries.
    Destroy {
        /// Domain id or name.
        domain: String,
    },
    /// Undo what killed `pvbuild create`s left behind (their domains, xenstore entries,
    /// network interfaces, processes and directories), from their records in
    /// /run/pvbuild/create (docs/crash-safety.md).
    Cleanup,
    /// Ask a guest to power off (as `xl shutdown`): it must acknowledge within 60 s.
    Shutdown(ControlOpts),
    /// Ask a guest to reboot (as `xl reboot`): it must acknowledge within 60 s.
    Reboot(ControlOpts),
    /// Pause a domain's vcpus (as `xl pause`).
    Pause {
        /// Domain id or name.
        domain: String,
    },
    /// Rename a domain (as `xl rename`).
    Rename {
        /// Domain id or name.
        domain: String,
        /// Its new name.
        new_name: String,
    },
    /// Send a magic SysRq key to a guest's kernel (as `xl sysrq`).
    Sysrq {
        /// Domain id or name.
        domain: String,
        /// The key (one character; `h` makes the guest list them on its console).
        key: String,
    },
    /// Unpause a domain (as `xl unpause`).
    Unpause {
        /// Domain id or name.
        domain: String,
    },
    /// Set a guest's memory target: its balloon driver gives memory back or takes it again
    /// (as `xl mem-set`; up to the config's maxmem).
    MemSet {
        /// Domain id or name.
        domain: String,
        /// The size: a number with an optional unit b, k, m (the default), g or t.
        size: String,
    },
    /// Set how much memory Xen lets a guest hold, not below its target (as `xl mem-max`;
    /// the guest's maxmem in xenstore stays as it was).
    MemMax {
        /// Domain id or name.
        domain: String,
        /// The size: a number with an optional unit b, k, m (the default), g or t.
        size: String,
    },
    /// Set how many of a guest's vcpus are online (as `xl vcpu-set`; up to its maxvcpus).
    VcpuSet {
        /// Domain id or name.
        domain: String,
        /// How many vcpus.
        count: String,
        /// Allow more vcpus than the host has physical CPUs.
        #[arg(short = 'I', long = "ignore-host")]
        ignore_host: bool,
    },
    /// List domains as `xl list` does: its columns, tabs and state letters (r running,
    /// b blocked, p paused, s shut down, then the reason: r reboot, s suspend, c crash,
    /// w watchdog, S soft reset; d dying). With -v (pvbuild's one -v, given before or after
    /// `list`), also the UUID, the shutdown reason code and the security label, as `xl list -v`.
    List {
        /// Each domain's configuration as libxl stored it (its libxl-json userdata), as JSON;
        /// a domain without one is left out, as xl leaves it out.
        #[arg(short = 'l', long = "long")]
        long: bool,
        /// Only this domain (id or name).
        domain: Option<String>,
    },
    /// List vcpus as `xl vcpu-list` does: the cpu each is on, its state (r running,
    /// b blocked, p offline), its cpu time, its hard and soft affinity.
    VcpuList {
        /// Only these domains (ids or names).
        domains: Vec<String>,
    },
    /// Host and hypervisor information, as `xl info` prints it.
    Info {
        /// Also the cpu and PCI topology and the NUMA nodes (xl info -n).
        #[arg(short = 'n', long = "numa")]
        numa: bool,
        /// Print only the value of the keys that start with this (as `xl info NAME`; ignored
        /// with -n, as xl ignores it).
        name: Option<String>,
    },
    /// Write a guest's memory and vcpu state (PV, PVH or HVM) to FILE in Xen's ELF core
    /// format, as `xl dump-core` (pause the guest first for a consistent image).
    DumpCore {
        /// The domain (id or name).
        domain: String,
        /// The core file to write (replaced once complete; nothing is left on failure).
        file: std::path::PathBuf,
    },
    /// Print the hypervisor's console ring, as `xl dmesg`.
    Dmesg {
        /// Clear the ring after reading it.
        #[arg(short = 'c', long = "clear")]
        clear: bool,
    },
    /// Add a network interface to a running domain (as `xl network-attach`).
    NetworkAttach {
        /// Domain id or name.
        domain: String,
        /// The interface, as vif spec words (e.g. `bridge=xenbr0 mac=00:16:3e:01:02:03`).
        spec: Vec<String>,
    },
    /// Remove a network interface from a domain (as `xl network-detach`).
    NetworkDetach {
        /// Domain id or name.
        domain: String,
        /// The interface: its device number or its MAC.
        device: String,
    },
    /// List a domain's network interfaces (as `xl network-list`).
    NetworkList {
        /// Domain id or name.
        domain: String,
    },
    /// Add a disk to a running domain (as `xl block-attach`): a block device goes to blkback;
    /// an image file to the domain's device model, started for it if it has none.
    BlockAttach {
        /// The QEMU to start when the disk needs one and the domain has none (default
        /// Debian's, as libxl's).
        #[arg(long, value_name = "QEMU")]
        device_model: Option<std::path::PathBuf>,
        /// Domain id or name.
        domain: String,
        /// The disk, as disk spec words (e.g. `phy:/dev/loop0,xvdb,w`).
        #[arg(required = true)]
        spec: Vec<String>,
    },
    /// Remove a disk from a domain (as `xl block-detach`).
    BlockDetach {
        /// Domain id or name.
        domain: String,
        /// The disk: its vdev (`xvdb`) or device number.
        device: String,
    },
    /// List a domain's disks (as `xl block-list`).
    BlockList {
        /// Domain id or name.
        domain: String,
    },
    /// Attach to a domain's console (Ctrl-] detaches).
    Console {
        /// The console's type, as xl's `-t`: `pv` (a PV guest's console; the default) or
        /// `serial` (an emulated serial port, which a PV guest has not).
        #[arg(short = 't', value_name = "TYPE", value_parser = ["pv", "serial"])]
        kind: Option<String>,
        /// The console's number, as xl's `-n` (0, the guest's first: pvbuild's guests have
        /// only that one).
        #[arg(short = 'n', value_name = "NUM", default_value_t = 0)]
        num: u32,
        /// Domain id or name.
        domain: String,
    },
    /// Stay resident and run pvbuild commands sent over a Unix socket (`pvbuild client`), one
    /// at a time, without a new process each: LightVM's resident toolstack. Only the server's
    /// own user may connect. SIGTERM or Ctrl-C stops it (a running request stops at its next
    /// safe point first).
    Serve {
        /// The socket to listen at (its directory is made mode 0700 when missing).
        #[arg(long, default_value = pvbuild::serve::DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
        /// Keep domains of this xl config made ahead, paused (named pvbuild-pool-PID-N), and
        /// hand them to the served creates of this config, under any name: such a create only
        /// names the domain and starts it. PV and PVH configs without bootloader, disks or uuid
        /// (docs/serve.md, "The pool")
        #[arg(long, value_name = "CONFIG")]
        pool: Option<PathBuf>,
        /// How many domains `--pool` keeps ready (1 to 64)
        #[arg(long, default_value_t = 2, value_name = "N", requires = "pool")]
        pool_size: usize,
    },
    /// Run a pvbuild command in `pvbuild serve` (with this process's terminal, output and
    /// working directory), or a batch of them over one connection; exits with the command's
    /// status. Not served: `console`, `create -c/--wait/-F`, `shutdown/reboot -w`.
    Client {
        /// The server's socket.
        #[arg(long, default_value = pvbuild::serve::DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
        /// Run the commands of FILE (`-`: standard input), one per line, split as a shell
        /// splits words (`#` starts a comment line); stop at the first that fails.
        #[arg(long, value_name = "FILE", conflicts_with = "command")]
        batch: Option<PathBuf>,
        /// Print each request's time, from its sending to its reply, on stderr.
        #[arg(long)]
        times: bool,
        /// The command and its arguments, as after `pvbuild` (e.g. `create -p guest.cfg`).
        #[arg(
            value_name = "COMMAND",
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required_unless_present = "batch"
        )]
        command: Vec<std::ffi::OsString>,
    },
    /// Internal (scripts/install.sh): write the man pages and shell completions, generated
    /// from these definitions, under DIR.
    #[command(hide = true)]
    GenManuals {
        /// Where to write man1/, man5/ and completions/.
        dir: PathBuf,
    },
}

// The options of `shutdown` and `reboot` (xl's `-a`, `-w`). Not a doc comment: with the
// subcommands deferred, a doc comment here would replace the variants' own descriptions.
#[derive(clap::Args, Debug)]
struct ControlOpts {
    /// Domain id or name.
    domain: Option<String>,
    /// Every domain but dom0 (and those already shut down).
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Wait until each domain has shut down or is gone.
    #[arg(short = 'w', long = "wait")]
    wait: bool,
    /// With --wait: give up after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    timeout: u64,
}

fn control(o: ControlOpts, request: pvbuild::control::shutdown::Request) -> ExitCode {
    let args = pvbuild::commands::lifecycle::ControlArgs {
        domain: o.domain,
        all: o.all,
        wait: o.wait,
        timeout_s: o.timeout,
        request,
    };
    done(pvbuild::commands::lifecycle::control_cmd(&args))
}

/// A size in xl's syntax (`parse_mem_size_kb`: no unit means MiB), in KiB.
fn kib(s: &str) -> Result<u64, String> {
    pvbuild::control::memory::parse_size_kib(s)
        .ok_or_else(|| format!("{s:?} is not a size (such as 256, 256m or 1g)"))
}

/// `--bootloader-max-size`: a size ([`kib`]) in bytes, not zero.
fn bytes(s: &str) -> Result<u64, String> {
    match kib(s)? {
        0 => Err("a bound of 0 bytes takes nothing".into()),
        k => Ok(k.saturating_mul(1024)),
    }
}

/// `--memory`: a size ([`kib`]) in whole MiB.
fn mib(s: &str) -> Result<u64, String> {
    let kib = kib(s)?;
    if kib % 1024 != 0 {
        return Err(format!("{s:?} is not a whole number of MiB"));
    }
    Ok(kib / 1024)
}

/// A command's output printed, or its error.
fn printed<E: std::fmt::Display>(r: Result<String, E>) -> ExitCode {
    match r {
        Ok(s) => write_out(&s),
        Err(e) => fail(e),
    }
}

/// Writes `s` to stdout. A reader that went away (`pvbuild plan K | head -1`) ends pvbuild
/// quietly with status 1; any other failure (a full disk) is an error: never a panic.
fn write_out(s: &str) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(e) => fail(format!("writing the output: {e}")),
    }
}

/// Success, or the command's error.
fn done<E: std::fmt::Display>(r: Result<(), E>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `pvbuild serve`: listens until a signal, running each request as [`run`] runs a command.
fn serve(socket: &std::path::Path, pool: Option<(&std::path::Path, usize)>) -> ExitCode {
    use pvbuild::serve::pool as shells;
    use pvbuild::support::out::write_all_err;
    if let Err(e) = pvbuild::support::interrupt::catch() {
        return fail(format!("installing signal handlers: {e}"));
    }
    // The pool's config is read (and refused if it cannot be pooled) before the socket is
    // made; its domains are made once the server waits.
    if let Some((config, size)) = pool {
        if let Err(e) = shells::install(config, size) {
            return fail(e);
        }
    }
    let listener = match pvbuild::serve::server::Listener::bind(socket) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    write_all_err(&format!(
        "pvbuild serve: listening at {} (pid {})\n",
        listener.path().display(),
        std::process::id()
    ));
    let mut run_one = |args: Vec<std::ffi::OsString>| {
        let argv = std::iter::once("pvbuild".into()).chain(args).collect();
        let code = run(argv, true);
        (0..=255u8)
            .find(|&n| ExitCode::from(n) == code)
            .unwrap_or(1)
    };
    let mut log = |a: std::fmt::Arguments<'_>| write_all_err(&format!("pvbuild serve: {a}\n"));
    let mut idle = |log: &mut dyn FnMut(std::fmt::Arguments<'_>)| {
        if shells::wants_more() {
            shells::fill_one(log);
        }
        shells::wants_more()
    };
    let r = listener.serve(&mut run_one, &mut idle, &mut log);
    shells::drain(&mut log);
    write_all_err("pvbuild serve: stopped\n");
    done(r)
}

/// `pvbuild client`: one command, or a batch over one connection.
fn client(
    socket: &std::path::Path,
    batch: Option<&std::path::Path>,
    times: bool,
    verbose: u8,
    command: &[std::ffi::OsString],
) -> ExitCode {
    use pvbuild::serve::client::{self, Client};
    let c = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let requests: Vec<Vec<std::ffi::OsString>> = match batch {
        None => vec![command.to_vec()],
        Some(path) => match client::read_batch(path).and_then(|t| client::batch_lines(&t)) {
            Ok(lines) => lines.iter().map(|(_, w)| client::to_args(w)).collect(),
            Err(e) => return fail(e),
        },
    };
    // The client's own -v reaches each request (`pvbuild -vv client create ...`).
    let level = (verbose > 0).then(|| format!("-{}", "v".repeat(usize::from(verbose))));
    for words in &requests {
        let args: Vec<std::ffi::OsString> = level
            .iter()
            .map(Into::into)
            .chain(words.iter().cloned())
            .collect();
        match c.run(&args) {
            Ok((code, took)) => {
                if times {
                    pvbuild::support::out::write_all_err(&format!(
                        "pvbuild client: {:.3} ms, exit {code}: {}\n",
                        took.as_secs_f64() * 1e3,
                        pvbuild::serve::wire::shown(&args)
                    ));
                }
                if code != 0 {
                    return ExitCode::from(code);
                }
            }
            Err(e) => return fail(e),
        }
    }
    ExitCode::SUCCESS
}

/// A usage error found after clap: `error: MSG` on stderr, status 2 (as clap's and xl's).
fn usage(msg: &str) -> ExitCode {
    fail(msg);
    ExitCode::from(2)
}

/// `error: MSG` on stderr (a closed stderr loses it, never panics), status 1.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "error: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    run(args, false)
}

/// Why a served request (`pvbuild serve`) of this command is refused: it would stay attached
/// to a guest, or to the user's terminal, for as long as the guest runs, holding the server.
fn not_served(command: &Command) -> Option<&'static str> {
    match command {
        Command::Console { .. } => Some("console attaches to the guest: run pvbuild console"),
        Command::Create {
            console,
            wait,
            foreground,
            adopt,
            ..
        } if *console || *wait || *foreground || adopt.is_some() => Some(
            "create -c, --wait, -F and --adopt stay with the guest: run pvbuild create directly",
        ),
        Command::Shutdown(o) | Command::Reboot(o) if o.wait => {
            Some("shutdown/reboot -w waits for the guest: run pvbuild directly")
        }
        Command::Serve { .. } | Command::Client { .. } => {
            Some("serve and client are not commands of the server")
        }
        _ => None,
    }
}

/// One command: `argv` is a whole command line (`pvbuild` first); `served` when `pvbuild
/// serve` runs it for a client.
fn run(argv: Vec<std::ffi::OsString>, served: bool) -> ExitCode {
    pvbuild::support::invocation::set(argv.iter().skip(1).cloned().collect(), served);
    // Per command, as a new process starts (a served request must not inherit the last one's).
    pvbuild::support::progress::set_quiet(false);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            // clap's own text (help, or the whole usage error with its suggestions), to
            // stdout for help and version, stderr otherwise; status 0 for help and version,
            // 2 for a usage error, as clap and xl give.
            let code = if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                0
            } else {
                2
            };
            return match e.print() {
                Ok(()) => ExitCode::from(code),
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
                Err(err) => fail(format!("writing the output: {err}")),
            };
        }
    };
    pvbuild::support::log::set_level(cli.verbose);
    pvbuild::build::steps::enable(cli.verbose >= 2);
    if served {
        if let Some(why) = not_served(&cli.command) {
            return usage(&format!("not served: {why}"));
        }
    }
    match cli.command {
        Command::Serve {
            socket,
            pool,
            pool_size,
        } => serve(&socket, pool.as_deref().map(|p| (p, pool_size))),
        Command::Client {
            socket,
            batch,
            times,
            command,
        } => client(&socket, batch.as_deref(), times, cli.verbose, &command),
        Command::Create {
            args: positional,
            defconfig,
            dry_run,
            debug,
            quiet,
            foreground,
            name,
            kernel,
            ramdisk,
            cmdline,
            memory,
            vcpus,
            paused,
            console,
            wait,
            timeout,
            fail_at,
            no_monitor,
            adopt,
            bootloader,
            bootloader_arg,
            disk,
            device_model,
            vif,
            bootloader_timeout,
            bootloader_max_size,
            bootloader_user,
            bootloader_as_root,
            no_cache,
        } => {
            let fail_at = match fail_at.as_deref() {
                None => None,
                Some("list") => {
                    let names: String = pvbuild::build::domain::FailAt::all()
                        .iter()
                        .map(|s| format!("{}\n", s.name()))
                        .collect();
                    return write_out(&names);
                }
                Some("list-pvh") => {
                    let names: String = pvbuild::build::pvh::PvhStep::ALL
                        .iter()
                        .map(|s| format!("{}\n", s.name()))
                        .chain(
                            ["xenstore", "device-model", "vif", "unpause"]
                                .iter()
                                .map(|s| format!("{s}\n")),
                        )
                        .collect();
                    return write_out(&names);
                }
                Some("list-hvm") => {
                    let names: String = pvbuild::build::hvm::HvmStep::ALL
                        .iter()
                        .map(|s| format!("{}\n", s.name()))
                        .chain(
                            ["xenstore", "device-model", "vif", "unpause"]
                                .iter()
                                .map(|s| format!("{s}\n")),
                        )
                        .collect();
                    return write_out(&names);
                }
                Some(n) => match pvbuild::build::domain::FailAt::from_name(n) {
                    Some(s) => Some(s),
                    None => return fail(format!("--fail-at: no step named {n:?}")),
                },
            };
            // As xl: words with '=' are settings; the first without is the config file.
            let mut config = defconfig;
            let mut overrides = Vec::new();
            for a in positional {
                if a.contains('=') {
                    overrides.push(a);
                } else if config.is_none() {
                    config = Some(PathBuf::from(a));
                } else {
                    return usage(&format!(
                        "create: a second config file {a:?} (settings are KEY=VALUE)"
                    ));
                }
            }
            pvbuild::support::progress::set_quiet(quiet);
            let args = pvbuild::commands::create::CreateArgs {
                config,
                overrides,
                dry_run,
                debug,
                name,
                kernel,
                ramdisk,
                cmdline,
                memory_mib: memory,
                vcpus,
                paused,
                console,
                wait: wait || foreground,
                timeout_s: timeout,
                fail_at,
                monitor: !no_monitor,
                adopt,
                bootloader,
                bootloader_args: bootloader_arg,
                disks: disk,
                device_model,
                vifs: vif,
                bootloader_timeout_s: bootloader_timeout,
                bootloader_max_file: bootloader_max_size,
                bootloader_user,
                bootloader_as_root,
                kernel_cache: !no_cache,
            };
            match pvbuild::commands::create::create_cmd(&args) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Shutdown(o) => control(o, pvbuild::control::shutdown::Request::Poweroff),
        Command::Reboot(o) => control(o, pvbuild::control::shutdown::Request::Reboot),
        Command::Pause { domain } => done(pvbuild::commands::lifecycle::pause_cmd(&domain, true)),
        Command::Unpause { domain } => {
            done(pvbuild::commands::lifecycle::pause_cmd(&domain, false))
        }
        Command::Sysrq { domain, key } => {
            done(pvbuild::commands::lifecycle::sysrq_cmd(&domain, &key))
        }
        Command::Rename { domain, new_name } => {
            done(pvbuild::commands::lifecycle::rename_cmd(&domain, &new_name))
        }
        Command::MemSet { domain, size } => {
            printed(pvbuild::commands::lifecycle::mem_set_cmd(&domain, &size))
        }
        Command::MemMax { domain, size } => {
            printed(pvbuild::commands::lifecycle::mem_max_cmd(&domain, &size))
        }
        Command::BlockAttach {
            device_model,
            domain,
            spec,
        } => printed(pvbuild::commands::devices::block_attach_cmd(
            &domain,
            &spec,
            device_model.as_deref(),
        )),
        Command::BlockDetach { domain, device } => done(
            pvbuild::commands::devices::block_detach_cmd(&domain, &device),
        ),
        Command::BlockList { domain } => {
            printed(pvbuild::commands::devices::block_list_cmd(&domain))
        }
        Command::VcpuSet {
            domain,
            count,
            ignore_host,
        } => printed(pvbuild::commands::lifecycle::vcpu_set_cmd(
            &domain,
            &count,
            ignore_host,
        )),
        Command::Destroy { domain } => done(pvbuild::commands::lifecycle::destroy_cmd(&domain)),
        Command::List { long, domain } => printed(pvbuild::control::list::list_cmd(
            domain.as_deref(),
            long,
            cli.verbose > 0,
        )),
        Command::VcpuList { domains } => {
            printed(pvbuild::control::vcpu_list::vcpu_list_cmd(&domains))
        }
        Command::Info { name, numa } => {
            printed(pvbuild::control::info::info_cmd(name.as_deref(), numa))
        }
        Command::DumpCore { domain, file } => {
            printed(pvbuild::control::dump_core::dump_core_cmd(&domain, &file))
        }
        Command::Dmesg { clear } => printed(pvbuild::control::vcpu_list::dmesg_cmd(clear)),
        Command::Cleanup => printed(pvbuild::commands::lifecycle::cleanup_cmd()),
        Command::NetworkAttach { domain, spec } => printed(
            pvbuild::commands::devices::network_attach_cmd(&domain, &spec),
        ),
        Command::NetworkDetach { domain, device } => done(
            pvbuild::commands::devices::network_detach_cmd(&domain, &device),
        ),
        Command::NetworkList { domain } => {
            printed(pvbuild::commands::devices::network_list_cmd(&domain))
        }
        Command::Console { kind, num, domain } => {
            if kind.as_deref() == Some("serial") {
                return fail(format!(
                    "domain {domain}: no serial console: a PV guest's console is -t pv"
                ));
            }
            if num != 0 {
                return fail(format!(
                    "domain {domain}: no console {num}: pvbuild gives a guest one PV console (-n 0)"
                ));
            }
            done(pvbuild::commands::devices::console_cmd(&domain))
        }
        Command::GenManuals { dir } => {
            use clap::CommandFactory;
            // clap_mangen and clap_complete build the deferred subcommands themselves.
            done(
                pvbuild::commands::manual::write_all(Cli::command(), &dir)
                    .map(|_| ())
                    .map_err(|e| format!("writing the manuals under {}: {e}", dir.display())),
            )
        }
        Command::Plan {
            ramdisk,
            cmdline,
            memory,
            vcpus,
            json,
            guest_type,
            kernel,
        } => {
            if guest_type == "hvm" {
                if json || ramdisk.is_some() || !cmdline.is_empty() {
                    return fail(
                        "--type hvm plans the firmware's build: --json, --ramdisk and --cmdline \
                         are not taken (the guest's kernel goes to the device model)",
                    );
                }
                return match pvbuild::build::hvm::plan::plan_cmd(&kernel, memory, vcpus) {
                    Ok(text) => write_out(&text),
                    Err(e) => fail(e),
                };
            }
            if guest_type == "pvh" {
                return match pvbuild::build::pvh::plan::plan_cmd(
                    &kernel,
                    ramdisk.as_deref(),
                    &cmdline,
                    memory,
                    vcpus,
                    json,
                ) {
                    Ok(text) => write_out(&text),
                    Err(e) => fail(e),
                };
            }
            let args = pvbuild::plan::PlanArgs {
                kernel,
                ramdisk,
                cmdline,
                memory_mib: memory,
                vcpus,
            };
            match pvbuild::plan::plan(&args) {
                Ok(p) => write_out(&if json {
                    format!("{}\n", pvbuild::plan::render_json(&p))
                } else {
                    pvbuild::plan::render_text(&p)
                }),
                Err(e) => fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// With the subcommands deferred (issue 17), each keeps the description of its variant
    /// (not its arguments struct's), and its arguments appear once it is built.
    #[test]
    fn deferred_subcommands_keep_their_descriptions_and_arguments() {
        let mut cmd = Cli::command();
        cmd.build();
        cmd.clone().debug_assert();
        let about = |name: &str| {
            let sc = cmd.find_subcommand(name).expect(name);
            sc.get_about().map(|a| a.to_string()).unwrap_or_default()
        };
        assert!(about("shutdown").starts_with("Ask a guest to power off"));
        assert!(about("reboot").starts_with("Ask a guest to reboot"));
        let create = cmd.find_subcommand("create").expect("create");
        for long in ["kernel", "bootloader", "no-cache", "verbose"] {
            assert!(
                create.get_arguments().any(|a| a.get_long() == Some(long)),
                "create --{long}"
            );
        }
    }
}
