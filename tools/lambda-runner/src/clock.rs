//! The virtual clock the functions run on: libfaketime's timestamp file.
//!
//! The file holds one offset from the real time in seconds (`+86400.000`, `-1234.500`), the
//! relative form libfaketime reads; every function instance is started under libfaketime
//! with `FAKETIME_TIMESTAMP_FILE` naming it and `FAKETIME_NO_CACHE=1`, so a new offset
//! applies to every running instance at its next look at the clock, and time keeps flowing
//! from the instant set. The monotonic clock is left alone (`DONT_FAKE_MONOTONIC=1`): timers,
//! timeouts and the SDK's retries run in real time. The runner reads the same file to give
//! each invocation its deadline on the function's clock.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

/// Where libfaketime is looked for (Debian's `libfaketime` package, then other usual places).
pub const FAKETIME_LIBS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// Set this to use a libfaketime elsewhere.
pub const FAKETIME_LIB_VAR: &str = "LAMBDA_RUNNER_FAKETIME_LIB";

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error(
        "libfaketime is not installed (looked in {FAKETIME_LIB_VAR} and {}): install the Debian package \
         faketime (scripts/setup.sh does), or run with --real-clock",
        FAKETIME_LIBS.join(", ")
    )]
    NoFaketime,
    #[error("the clock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the clock file {} does not hold an offset in seconds such as +3600 or -120.5", path.display())]
    Format { path: PathBuf },
}

/// The libfaketime shared library to preload.
pub fn faketime_lib() -> Result<PathBuf, ClockError> {
    if let Some(p) = std::env::var_os(FAKETIME_LIB_VAR).map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ClockError::NoFaketime)
        };
    }
    FAKETIME_LIBS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(ClockError::NoFaketime)
}

/// The clock of a timestamp file.
#[derive(Clone, Debug)]
pub struct Clock {
    path: PathBuf,
}

impl Clock {
    /// The clock of `path`; the file is created at the real time (`+0`) if it does not exist.
    pub fn open(path: &Path) -> Result<Clock, ClockError> {
        let clock = Clock { path: path.to_owned() };
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| clock.io(e))?;
            }
            clock.write_offset(0.0)?;
        }
        clock.offset()?;
        Ok(clock)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> ClockError {
        ClockError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The offset from the real time, in seconds.
    pub fn offset(&self) -> Result<f64, ClockError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| self.io(e))?;
        parse_offset(&text).ok_or_else(|| ClockError::Format {
            path: self.path.clone(),
        })
    }

    /// The time on this clock now.
    pub fn now(&self) -> Result<DateTime<Utc>, ClockError> {
        let offset = self.offset()?;
        Ok(Utc::now() + Duration::milliseconds((offset * 1000.0).round() as i64))
    }

    /// Sets the clock to `t` (from which it runs on).
    pub fn set(&self, t: DateTime<Utc>) -> Result<(), ClockError> {
        let offset = (t - Utc::now()).num_milliseconds() as f64 / 1000.0;
        self.write_offset(offset)
    }

    /// Writes the file whole and renames it into place, so that a reader never sees half.
    fn write_offset(&self, offset: f64) -> Result<(), ClockError> {
        let tmp = self.path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, format!("{offset:+.3}\n")).map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }
}

/// `+3600`, `-120.5`, `0` (what this module writes).
pub fn parse_offset(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    t.strip_prefix('+')
        .unwrap_or(t)
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_as_written() {
        assert_eq!(parse_offset("+3600.000\n"), Some(3600.0));
        assert_eq!(parse_offset("-120.5"), Some(-120.5));
        assert_eq!(parse_offset(""), Some(0.0));
        assert_eq!(parse_offset("@2026-12-01 00:00:00"), None);
    }

    #[test]
    fn a_set_clock_reads_back_the_instant_set() {
        let path = std::env::temp_dir().join(format!("lambda-runner-clock-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let clock = Clock::open(&path).unwrap();
        assert!((clock.now().unwrap() - Utc::now()).num_seconds().abs() < 5);
        let t = DateTime::parse_from_rfc3339("2026-12-01T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        clock.set(t).unwrap();
        assert!((clock.now().unwrap() - t).num_seconds().abs() < 5);
        std::fs::remove_file(&path).unwrap();
    }
}
