//! The long-running mode of `sigil agent`: logs each event, runs the hook
//! and signals the supervised program after each rotation, forwards SIGTERM
//! and SIGINT to it, and exits with its status.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sigil_agent::{Agent, Event};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};

use super::{TOKEN_ENV, log, stopped};

/// How long the supervised program has to exit after SIGTERM when renewal
/// has stopped for good, before it is killed.
const GRACE: Duration = Duration::from_secs(10);

/// What to do besides renewing.
pub(super) struct Plan {
    /// A shell command to run after each rotation.
    pub(super) hook: Option<String>,
    /// A program (and its arguments) to start and supervise.
    pub(super) command: Vec<String>,
    /// The signal the program gets after each rotation.
    pub(super) signal: Signal,
    /// Where the files are (for messages).
    pub(super) dir: PathBuf,
}

/// Renews until renewal stops for good (an error), the supervised program
/// exits (its status), or SIGTERM/SIGINT arrives (forwarded to the program,
/// whose status is then returned; 0 without one).
pub(super) async fn run(
    _agent: Agent,
    mut events: broadcast::Receiver<Event>,
    plan: Plan,
) -> anyhow::Result<ExitCode> {
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let hook = plan.hook.map(Hook::start);
    let mut program = match plan.command.split_first() {
        Some((name, args)) => Some(Program::start(name, args)?),
        None => None,
    };
    loop {
        tokio::select! {
            received = events.recv() => {
                let rotated = match received {
                    Ok(event) => {
                        log(&event);
                        if event.is_final() {
                            if let Some(program) = &mut program {
                                program.stop().await;
                            }
                            return Err(stopped(&event, &plan.dir));
                        }
                        matches!(event, Event::Issued { .. } | Event::Renewed { .. })
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        log(format_args!("missed {missed} events; acting as after a rotation"));
                        true
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        bail!("renewal stopped unexpectedly")
                    }
                };
                if rotated {
                    if let Some(hook) = &hook {
                        hook.run();
                    }
                    if let Some(program) = &program {
                        program.signal(plan.signal);
                    }
                }
            }
            status = wait(&mut program) => {
                let status = status.context("waiting for the supervised program")?;
                if let Some(program) = &program {
                    log(format_args!("{} (pid {}) ended: {status}", program.name, program.pid));
                }
                return Ok(exit_code(status));
            }
            _ = terminate.recv() => {
                if let Some(code) = shut_down(program.as_ref(), Signal::SIGTERM) {
                    return Ok(code);
                }
            }
            _ = interrupt.recv() => {
                if let Some(code) = shut_down(program.as_ref(), Signal::SIGINT) {
                    return Ok(code);
                }
            }
        }
    }
}

/// On SIGTERM or SIGINT: forwards it to the program (and returns `None`:
/// keep going until it exits), or stops at once without one.
fn shut_down(program: Option<&Program>, received: Signal) -> Option<ExitCode> {
    match program {
        Some(program) => {
            log(format_args!(
                "got {received}; forwarding it to {} (pid {})",
                program.name, program.pid
            ));
            program.signal(received);
            None
        }
        None => {
            log(format_args!("got {received}; stopping"));
            Some(ExitCode::SUCCESS)
        }
    }
}

/// The supervised program's exit, or never without one.
async fn wait(program: &mut Option<Program>) -> std::io::Result<ExitStatus> {
    match program {
        Some(program) => program.child.wait().await,
        None => std::future::pending().await,
    }
}

/// The program's status as this process's: its exit code, or 128+N if
/// signal N ended it (as shells report it).
fn exit_code(status: ExitStatus) -> ExitCode {
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The program `sigil agent` supervises.
struct Program {
    name: String,
    pid: Pid,
    child: Child,
}

impl Program {
    fn start(name: &str, args: &[String]) -> anyhow::Result<Self> {
        let child = Command::new(name)
            .args(args)
            .env_remove(TOKEN_ENV)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .with_context(|| format!("{name} has no process id"))?;
        log(format_args!("started {name} (pid {pid})"));
        Ok(Self {
            name: name.to_owned(),
            pid,
            child,
        })
    }

    /// Sends a signal, logging a failure. The child is reaped only by
    /// [`wait`] in the same task, so its pid cannot have been reused.
    fn signal(&self, signal: Signal) {
        if let Err(error) = kill(self.pid, signal) {
            log(format_args!(
                "could not send {signal} to {} (pid {}): {error}",
                self.name, self.pid
            ));
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`GRACE`].
    async fn stop(&mut self) {
        log(format_args!(
            "stopping {} (pid {}) with SIGTERM",
            self.name, self.pid
        ));
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(GRACE, self.child.wait())
            .await
            .is_err()
        {
            log(format_args!(
                "{} (pid {}) did not exit within {}s; killing it",
                self.name,
                self.pid,
                GRACE.as_secs()
            ));
            let _ = self.child.kill().await;
        }
    }
}

/// Runs the `--exec` command after rotations, one run at a time; rotations
/// that come while it runs are covered by one more run.
struct Hook {
    runs: mpsc::UnboundedSender<()>,
}

impl Hook {
    fn start(command: String) -> Self {
        let (runs, mut pending) = mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            while pending.recv().await.is_some() {
                while pending.try_recv().is_ok() {}
                let status = Command::new("sh")
                    .arg("-c")
                    .arg(&command)
                    .env_remove(TOKEN_ENV)
                    .stdin(Stdio::null())
                    .status()
                    .await;
                match status {
                    Ok(status) if status.success() => {}
                    Ok(status) => log(format_args!("hook `{command}` failed: {status}")),
                    Err(error) => log(format_args!("could not run hook `{command}`: {error}")),
                }
            }
        });
        Self { runs }
    }

    fn run(&self) {
        let _ = self.runs.send(());
    }
}
