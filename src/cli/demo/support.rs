//! What the demo's story leans on: a throwaway data dir, tasks that stop
//! with it, bounded waits and readable durations.

use std::fmt::Display;
use std::os::unix::fs::DirBuilderExt;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use clap::{Args, FromArgMatches};
use tokio::task::JoinHandle;

use crate::datadir::DataDir;

/// How long any one step may take.
pub(super) const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh data dir under the system's temporary directory, removed on
/// drop.
pub(super) struct Scratch {
    pub(super) dir: DataDir,
}

impl Scratch {
    pub(super) fn create() -> anyhow::Result<Self> {
        let mut bytes = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| anyhow!("the operating system's random source failed"))?;
        let path = std::env::temp_dir().join(format!("sigil-demo-{}", hex::encode(bytes)));
        // Not recursive: fails rather than reuse anything already there.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            dir: DataDir::new(path),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(self.dir.path()) {
            eprintln!("warning: removing {}: {error}", self.dir.path().display());
        }
    }
}

/// A spawned task that is aborted when this handle is dropped.
pub(super) struct Task<T>(pub(super) JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Parses a command's arguments as the command line would, so that the
/// demo runs `init` and `serve` exactly as they run on their own.
pub(super) fn parse_args<T: Args + FromArgMatches>(
    name: &'static str,
    args: &[&str],
) -> anyhow::Result<T> {
    let command = T::augment_args(clap::Command::new(name).no_binary_name(true));
    let matches = command.try_get_matches_from(args)?;
    Ok(T::from_arg_matches(&matches)?)
}

/// `future`, or an error naming `what` after [`STEP_TIMEOUT`].
pub(super) async fn timeout<F: Future>(what: &str, future: F) -> anyhow::Result<F::Output> {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .map_err(|_| anyhow!("{what} took longer than {}", took(STEP_TIMEOUT)))
}

/// The error of a step that did not behave as the story says.
pub(super) fn unexpected(step: u8, expected: &str, got: impl Display) -> anyhow::Error {
    anyhow!("step {step} did not behave as expected: expected {expected}, got {got}")
}

pub(super) fn minutes_left(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs()
        .div_ceil(60)
}

/// A duration as people read it: "0.4 ms", "12 ms", "1.3 s".
pub(super) fn took(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(took(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(took(Duration::from_millis(12)), "12 ms");
        assert_eq!(took(Duration::from_millis(1300)), "1.3 s");
    }
}
