//! Where `create`'s configuration comes from, as xl takes it: a config file (positional or
//! `-f FILE`) and `KEY=VALUE` settings after it, appended to the file's text (xl's
//! `extra_config`: the file, a newline, the settings one a line), so a later setting wins;
//! errors named by file and line (`guest.cfg:3: ...`, or the `KEY=VALUE` at fault). The
//! resolved configuration's JSON (`create -n`, `-d`) is libxl's: [`crate::config::libxl_json`].

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::config::{Action, ConfigError, DomainConfig, Warning, CONFIG_MAX_BYTES};

/// A config's text and where each part of it came from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The file, if there is one.
    file: Option<PathBuf>,
    /// The whole text: the file's, then the settings.
    text: Vec<u8>,
    /// Lines of the text that come from the file (the settings start after them).
    file_lines: usize,
    /// The `KEY=VALUE` settings, in order.
    extra: Vec<String>,
}

/// Lines in `text` as the config parser counts them (1 + its newlines).
fn lines_in(text: &[u8]) -> usize {
    1 + text.iter().filter(|&&b| b == b'\n').count()
}

impl ConfigSource {
    /// The file `file` (if any) with `extra` appended, as xl appends `KEY=VALUE` settings.
    /// `None` when there is neither.
    pub fn read(file: Option<&Path>, extra: &[String]) -> Result<Option<Self>, String> {
        if file.is_none() && extra.is_empty() {
            return Ok(None);
        }
        let mut text = Vec::new();
        if let Some(path) = file {
            let read_err = |e: std::io::Error| {
                ConfigError::Read {
                    path: path.into(),
                    msg: e.to_string(),
                }
                .to_string()
            };
            let f = std::fs::File::open(path).map_err(read_err)?;
            f.take(CONFIG_MAX_BYTES as u64 + 1)
                .read_to_end(&mut text)
                .map_err(read_err)?;
        }
        let file_lines = if file.is_some() { lines_in(&text) } else { 0 };
        if !extra.is_empty() {
            // xl: "\n%s\n" with each setting followed by "\n".
            if file.is_some() {
                text.push(b'\n');
            }
            for e in extra {
                text.extend_from_slice(e.as_bytes());
                text.push(b'\n');
            }
        }
        Ok(Some(Self {
            file: file.map(Path::to_path_buf),
            text,
            file_lines,
            extra: extra.to_vec(),
        }))
    }

    /// What xl's "Parsing config from ..." names: the file, or the command line.
    pub fn name(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => "the command line".into(),
        }
    }

    /// Where line `line` of the text came from: `FILE:LINE`, or the `KEY=VALUE` setting.
    pub fn locate(&self, line: usize) -> String {
        if line <= self.file_lines {
            if let Some(f) = &self.file {
                return format!("{}:{line}", f.display());
            }
        }
        // The settings start one line after the file's (xl's extra newline).
        let first = if self.file.is_some() {
            self.file_lines + 1
        } else {
            1
        };
        match line.checked_sub(first).and_then(|i| self.extra.get(i)) {
            Some(s) => format!("command line {s:?}"),
            None => format!("{} line {line}", self.name()),
        }
    }

    /// A config error with its file and line (or its `KEY=VALUE`).
    pub fn error(&self, e: &ConfigError) -> String {
        match e {
            ConfigError::Syntax { line, msg } => format!("{}: {msg}", self.locate(*line)),
            ConfigError::Value { key, line, msg } => {
                format!("{}: {key}: {msg}", self.locate(*line))
            }
            ConfigError::Refused { key, line, why } => format!(
                "{}: key '{key}' is not supported by pvbuild: {why}",
                self.locate(*line)
            ),
            ConfigError::Invalid(m) => format!("{}: {m}", self.name()),
            ConfigError::TooBig => format!("{}: {e}", self.name()),
            ConfigError::Read { .. } => e.to_string(),
        }
    }

    /// Whether the text sets `key` (what xl's parser leaves at libxl's default otherwise).
    pub fn sets(&self, key: &str) -> bool {
        crate::config::parse(&self.text).is_ok_and(|c| c.get(key).is_some())
    }

    /// The domain configuration, with xl's defaults; warnings located as errors are.
    pub fn load(&self) -> Result<(DomainConfig, Vec<String>), String> {
        let parsed = crate::config::parse(&self.text).map_err(|e| self.error(&e))?;
        let (cfg, warnings) = DomainConfig::from_xl(&parsed).map_err(|e| self.error(&e))?;
        let warnings = warnings
            .iter()
            .map(|w: &Warning| format!("{}: {}", self.locate(w.line), w.msg))
            .collect();
        Ok((cfg, warnings))
    }
}

/// xl's word for an action.
pub fn action_name(a: Action) -> &'static str {
    match a {
        Action::Destroy => "destroy",
        Action::Restart => "restart",
        Action::RenameRestart => "rename-restart",
        Action::Preserve => "preserve",
        Action::CoredumpDestroy => "coredump-destroy",
        Action::CoredumpRestart => "coredump-restart",
        Action::SoftReset => "soft-reset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(file: &str, extra: &[&str]) -> ConfigSource {
        let dir = std::env::temp_dir().join(format!("pvbuild-cfgsrc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("g.cfg");
        std::fs::write(&p, file).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        ConfigSource::read(Some(&p), &extra).unwrap().unwrap()
    }

    #[test]
    fn settings_after_the_file_win_and_errors_name_their_source() {
        let s = src(
            "name = \"a\"\nkernel = \"/k\"\nmemory = 64\n",
            &["memory=96", "vcpus=2"],
        );
        let (c, _) = s.load().unwrap();
        assert_eq!((c.memory_mib, c.vcpus), (96, 2));
        let e = src(
            "name = \"a\"\nkernel = \"/k\"\nmemory = 64\n",
            &["memory=\"x\""],
        )
        .load()
        .unwrap_err();
        assert!(
            e.starts_with("command line \"memory=\\\"x\\\"\": memory"),
            "{e}"
        );
        let e = src("name = \"a\"\n\nmemory = = 64\n", &[])
            .load()
            .unwrap_err();
        assert!(e.contains("g.cfg:3: "), "{e}");
    }
}
