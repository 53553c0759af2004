//! Latency statistics, throughput and the server's CPU time.

use std::time::Duration;

use anyhow::{Context, anyhow};

/// One request's result.
pub(crate) struct Outcome {
    pub(crate) latency: Duration,
    pub(crate) result: Result<(), String>,
}

/// What one load run measured.
pub(crate) struct Report {
    concurrency: usize,
    elapsed: Duration,
    cpu_ms: Option<f64>,
    client_cpu_ms: Option<f64>,
    latencies: Vec<Duration>,
    ok: usize,
    pub(crate) errors: usize,
    first_error: Option<String>,
}

impl Report {
    pub(crate) fn new(concurrency: usize, elapsed: Duration, cpu_ms: Option<f64>) -> Self {
        Self {
            concurrency,
            elapsed,
            cpu_ms,
            client_cpu_ms: None,
            latencies: Vec::new(),
            ok: 0,
            errors: 0,
            first_error: None,
        }
    }

    /// The load generator's own CPU time over the run, in ms.
    pub(crate) fn set_client_cpu(&mut self, ms: Option<f64>) {
        self.client_cpu_ms = ms;
    }

    pub(crate) fn add(&mut self, outcome: Outcome) {
        self.latencies.push(outcome.latency);
        match outcome.result {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Nearest-rank percentile, in ms.
    fn percentile(sorted: &[Duration], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, sorted.len()) - 1;
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }

    pub(crate) fn print(mut self, kind: &str) {
        self.latencies.sort_unstable();
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        };
        let p50 = Self::percentile(&self.latencies, 50.0);
        let p99 = Self::percentile(&self.latencies, 99.0);
        let max = Self::percentile(&self.latencies, 100.0);
        let cpu_per_cert = match (self.cpu_ms, self.ok) {
            (Some(ms), ok) if ok > 0 => Some(ms / ok as f64),
            _ => None,
        };
        let client_per_cert = match (self.client_cpu_ms, self.ok) {
            (Some(ms), ok) if ok > 0 => Some(ms / ok as f64),
            _ => None,
        };
        let fmt = |v: Option<f64>| v.map_or_else(|| "na".to_owned(), |c| format!("{c:.3}"));
        eprintln!(
            "{kind}: {} ok, {} errors in {secs:.3}s at concurrency {} -> {rate:.1} certs/s; \
             latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms{}; load generator CPU {} ms/cert",
            self.ok,
            self.errors,
            self.concurrency,
            cpu_per_cert.map_or_else(String::new, |c| format!("; server CPU {c:.3} ms/cert")),
            fmt(client_per_cert)
        );
        if let Some(e) = &self.first_error {
            eprintln!("{kind}: first error: {e}");
        }
        println!(
            "RESULT kind={kind} ok={} errors={} concurrency={} secs={secs:.3} rate={rate:.1} \
             p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} cpu_ms_per_cert={} client_cpu_ms_per_cert={}",
            self.ok,
            self.errors,
            self.concurrency,
            fmt(cpu_per_cert),
            fmt(client_per_cert)
        );
    }
}

/// The server's utime + stime, before and after.
pub(crate) struct CpuProbe {
    pid: Option<u32>,
    clk_tck: u64,
    before: u64,
}

impl CpuProbe {
    pub(crate) fn start(pid: Option<u32>, clk_tck: u64) -> anyhow::Result<Self> {
        let before = match pid {
            Some(pid) => ticks(pid)?,
            None => 0,
        };
        Ok(Self {
            pid,
            clk_tck,
            before,
        })
    }

    /// The CPU time the server used since `start`, in ms.
    pub(crate) fn finish(self) -> anyhow::Result<Option<f64>> {
        let Some(pid) = self.pid else { return Ok(None) };
        let used = ticks(pid)?.saturating_sub(self.before);
        Ok(Some(used as f64 * 1000.0 / self.clk_tck.max(1) as f64))
    }
}

/// utime + stime of a process, in clock ticks (fields 14 and 15 of
/// /proc/PID/stat).
fn ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces; fields after it start at 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("{path}: field {n} missing"))?
            .parse()
            .with_context(|| format!("{path}: field {n}"))
    };
    Ok(field(14)? + field(15)?)
}
