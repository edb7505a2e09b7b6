//! The devnet's child processes: each daemon is the real `verinfer` binary (or anvil), its
//! stdout and stderr collected line by line into memory and into `DIR/NAME.log`, stopped with
//! SIGTERM (then SIGKILL) when its handle drops, so a failing test or a Ctrl-C leaves nothing
//! running.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::DevnetError;

/// How to start one daemon again (after a kill) exactly as before.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short name, used in logs and errors.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where `NAME.log` goes.
    pub log_dir: PathBuf,
}

/// A running (or killed) daemon.
pub struct Daemon {
    spec: Spec,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

/// Escape sequences out (tracing colours its output when it thinks it writes to a terminal).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Daemon {
    /// Starts it; returns at once (use [`Daemon::wait_line`] to wait for readiness).
    pub fn start(spec: Spec) -> Result<Self, DevnetError> {
        let mut d = Daemon {
            spec,
            child: None,
            lines: Arc::new(Mutex::new(Vec::new())),
        };
        d.restart()?;
        Ok(d)
    }

    /// Starts it again after [`Daemon::kill9`] (its lines so far are kept).
    pub fn restart(&mut self) -> Result<(), DevnetError> {
        let s = &self.spec;
        let mut child = Command::new(&s.program)
            .args(&s.args)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DevnetError::Spawn(s.program.display().to_string(), e.to_string()))?;
        let log = log_file(&s.log_dir, &s.name)?;
        let out = child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>);
        for r in [out, err].into_iter().flatten() {
            let (lines, log) = (self.lines.clone(), log.clone());
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines() {
                    let Ok(l) = l else { break };
                    let l = strip_ansi(&l);
                    if let Ok(mut f) = log.lock() {
                        let _ = writeln!(f, "{l}");
                    }
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(l);
                }
            });
        }
        self.child = Some(child);
        Ok(())
    }

    /// Kills it at once (SIGKILL: no clean-up runs in the daemon).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it cleanly: SIGTERM, up to 5 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: plain FFI call with a pid we own; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Whether the process has exited (or was killed).
    pub fn exited(&mut self) -> bool {
        match &mut self.child {
            None => true,
            Some(c) => !matches!(c.try_wait(), Ok(None)),
        }
    }

    /// The number of lines so far (a mark for [`Daemon::wait_line`]).
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits for a line at or after `from` holding every one of `pats`, and returns it.
    pub fn wait_line(
        &mut self,
        from: usize,
        pats: &[&str],
        secs: u64,
    ) -> Result<String, DevnetError> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.find(from, pats) {
                return Ok(l);
            }
            if self.exited() {
                // One last look: the line may have come just before the exit.
                std::thread::sleep(Duration::from_millis(100));
                return self.find(from, pats).ok_or_else(|| self.died(pats));
            }
            if start.elapsed() > Duration::from_secs(secs) {
                return Err(DevnetError::Timeout(format!(
                    "{} never printed {pats:?} in {secs} s (log: {})",
                    self.spec.name,
                    self.log_path().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn find(&self, from: usize, pats: &[&str]) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .get(from..)?
            .iter()
            .find(|l| pats.iter().all(|p| l.contains(p)))
            .cloned()
    }

    /// Lines at or after `from` holding every one of `pats`.
    pub fn count(&self, from: usize, pats: &[&str]) -> usize {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.get(from..).map_or(0, |ls| {
            ls.iter()
                .filter(|l| pats.iter().all(|p| l.contains(p)))
                .count()
        })
    }

    fn died(&self, pats: &[&str]) -> DevnetError {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let tail: Vec<&str> = lines
            .iter()
            .rev()
            .take(15)
            .rev()
            .map(|s| s.as_str())
            .collect();
        DevnetError::Died(
            self.spec.name.clone(),
            format!("before printing {pats:?}; last lines:\n{}", tail.join("\n")),
        )
    }

    /// Where its output is kept.
    pub fn log_path(&self) -> PathBuf {
        self.spec.log_dir.join(format!("{}.log", self.spec.name))
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_file(dir: &Path, name: &str) -> Result<Arc<Mutex<std::fs::File>>, DevnetError> {
    let path = dir.join(format!("{name}.log"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| DevnetError::Io(path.display().to_string(), e.to_string()))?;
    Ok(Arc::new(Mutex::new(f)))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16, DevnetError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| DevnetError::Io("127.0.0.1:0".into(), e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| DevnetError::Io("127.0.0.1:0".into(), e.to_string()))
}
