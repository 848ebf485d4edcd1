//! Shared by the header tests: compile a small C program against Debian's libxen-dev headers
//! that prints `key=value` for C expressions (sizes, offsets, constants), run it, and return
//! the values, for comparison with the Rust side.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

/// Compiles `prelude` (includes and `int main(void) {`) followed by one `printf` per
/// `(key, C expression)`, in a directory named `name` under the test target dir, runs it and
/// returns `key → value`, or what went wrong.
pub fn c_values<'a>(
    name: &str,
    prelude: &str,
    exprs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HashMap<String, u64>, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut src = String::from(prelude);
    for (key, c) in exprs {
        src.push_str(&format!(
            "    printf(\"%s=%llu\\n\", \"{key}\", (unsigned long long)({c}));\n"
        ));
    }
    src.push_str("    return 0;\n}\n");
    let c_file = dir.join("abi.c");
    let exe = dir.join("abi");
    std::fs::write(&c_file, src).map_err(|e| format!("{}: {e}", c_file.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&c_file)
        .output()
        .map_err(|e| format!("running the C compiler `{cc}`: {e} (install gcc and libxen-dev)"))?;
    if !out.status.success() {
        return Err(format!(
            "compiling the header probe failed (is libxen-dev installed?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let run = Command::new(&exe)
        .output()
        .map_err(|e| format!("running the probe: {e}"))?;
    if !run.status.success() {
        return Err(format!("the probe exited with {}", run.status));
    }
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("bad probe line {l:?}"))?;
            let v = v
                .parse()
                .map_err(|e| format!("bad probe value in {l:?}: {e}"))?;
            Ok((k.to_owned(), v))
        })
        .collect()
}
