//! The processes a fault is aimed at, named explicitly and checked before every signal. A
//! process is taken by pid together with its start time (field 22 of `/proc/<pid>/stat`), and
//! a signal goes to it only while the process with that pid is still the one named: never to
//! whatever reused the pid, and never to a process found by its name (other people's systems
//! run on the same machine).

use std::path::Path;

use anyhow::{Context, bail};
use nix::{sys::signal::Signal, unistd::Pid};

/// One process, as it was when named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process {
    pid: i32,
    /// Clock ticks after boot at which it started: with the pid, who it is.
    started: u64,
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    parent: i32,
    started: u64,
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so the fields are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let after_name = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state), fields[1] field 4 (parent), fields[19] field 22 (start).
    Some(Stat {
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl Process {
    /// The process that has `pid` now.
    pub fn named(pid: u32) -> anyhow::Result<Self> {
        let pid = i32::try_from(pid).with_context(|| format!("no process has pid {pid}"))?;
        let stat = stat(pid).with_context(|| format!("no process has pid {pid}"))?;
        if stat.state == 'Z' {
            bail!("process {pid} has exited");
        }
        Ok(Self {
            pid,
            started: stat.started,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the pid still belongs to this process and it has not exited (a process that
    /// exited but was not yet reaped by its parent counts as gone).
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.started == self.started && s.state != 'Z')
    }

    /// Whether it is stopped by a signal (state `T`).
    pub fn is_stopped(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.started == self.started && s.state == 'T')
    }

    /// Sends `signal`, if the pid still belongs to this process.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        if !self.is_alive() {
            bail!("process {} is gone", self.pid);
        }
        nix::sys::signal::kill(Pid::from_raw(self.pid), signal)
            .with_context(|| format!("sending {signal} to process {}", self.pid))
    }

    /// Its children now (those found in `/proc` whose parent it is).
    pub fn children(&self) -> Vec<Process> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                let stat = stat(pid)?;
                (stat.parent == self.pid && stat.state != 'Z').then_some(Process {
                    pid,
                    started: stat.started,
                })
            })
            .collect()
    }

    /// The program it runs (`/proc/<pid>/exe`).
    pub fn program(&self) -> anyhow::Result<std::path::PathBuf> {
        std::fs::read_link(format!("/proc/{}/exe", self.pid))
            .with_context(|| format!("reading the program of process {}", self.pid))
    }
}

/// The postmaster of the PostgreSQL cluster in `data_dir`: the pid on the first line of its
/// `postmaster.pid`.
pub fn postmaster(data_dir: &Path) -> anyhow::Result<Process> {
    let file = data_dir.join("postmaster.pid");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {} (is the cluster running?)", file.display()))?;
    let pid: u32 = text
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .with_context(|| format!("{} names no pid", file.display()))?;
    Process::named(pid)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_stat_line_is_read_after_the_command_name_whatever_it_holds() {
        let line = "4242 (post (gres) x) T 17 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'T',
                parent: 17,
                started: 987654
            })
        );
        assert_eq!(parse_stat("4242 (short) S 1"), None);
    }

    #[test]
    fn this_process_is_named_alive_and_not_stopped_and_a_free_pid_is_no_process() {
        let me = Process::named(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert!(!me.is_stopped());
        let stranger = Process {
            started: me.started + 1,
            ..me
        };
        assert!(!stranger.is_alive(), "the same pid started at another time");
        assert!(stranger.signal(Signal::SIGCONT).is_err());
        assert!(Process::named(u32::MAX).is_err());
    }
}
