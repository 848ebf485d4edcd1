//! The `pvbuild` command.

fn main() {
    eprintln!("error: pvbuild: no command yet");
    std::process::exit(1);
}
