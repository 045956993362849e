//! CPU time of the system's processes over a measured window: utime + stime from
//! `/proc/<pid>/stat` before and after, per request. `cargo xtask bench` passes the services'
//! pids (`--cpu-pid gateway=1234 ...`); without any the window measures nothing.

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;

/// A process to watch, `name=pid` on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Process {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, pid) = text
            .split_once('=')
            .ok_or_else(|| format!("expected name=pid, got {text:?}"))?;
        let pid = pid
            .parse()
            .map_err(|_| format!("{pid:?} is not a process id"))?;
        if name.is_empty() {
            return Err(format!("expected name=pid, got {text:?}"));
        }
        Ok(Self {
            name: name.to_owned(),
            pid,
        })
    }
}

/// The processes a run's measured window is charged to.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    processes: Vec<Process>,
    ticks_per_second: f64,
}

/// CPU ticks of each process at the start of a window.
pub struct Window<'a> {
    probe: &'a Probe,
    started: Instant,
    before: Vec<Option<u64>>,
}

/// What the window cost.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Usage {
    pub window_seconds: f64,
    pub requests: u64,
    /// Per process: CPU seconds in the window and microseconds per request.
    pub by_process: BTreeMap<String, ProcessUsage>,
    /// The processes together, µs per request.
    pub total_us_per_request: f64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ProcessUsage {
    pub cpu_seconds: f64,
    pub us_per_request: f64,
}

impl Probe {
    pub fn new(processes: Vec<Process>) -> Self {
        Self {
            processes,
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    pub fn start(&self) -> Window<'_> {
        Window {
            probe: self,
            started: Instant::now(),
            before: self.processes.iter().map(|p| cpu_ticks(p.pid)).collect(),
        }
    }
}

impl Window<'_> {
    /// The CPU each process used since [`Probe::start`], per request; `None` without
    /// processes (or when none could be read).
    pub fn finish(self, requests: u64) -> Option<Usage> {
        let after: Vec<Option<u64>> = self
            .probe
            .processes
            .iter()
            .map(|p| cpu_ticks(p.pid))
            .collect();
        usage(
            &self.probe.processes,
            &self.before,
            &after,
            self.probe.ticks_per_second,
            self.started.elapsed().as_secs_f64(),
            requests,
        )
    }
}

fn usage(
    processes: &[Process],
    before: &[Option<u64>],
    after: &[Option<u64>],
    ticks_per_second: f64,
    window_seconds: f64,
    requests: u64,
) -> Option<Usage> {
    let per_request = |seconds: f64| seconds * 1e6 / requests.max(1) as f64;
    let mut by_process = BTreeMap::new();
    let mut total = 0.0;
    for ((process, before), after) in processes.iter().zip(before).zip(after) {
        let (Some(before), Some(after)) = (before, after) else {
            continue;
        };
        let seconds = after.saturating_sub(*before) as f64 / ticks_per_second;
        total += seconds;
        by_process.insert(
            process.name.clone(),
            ProcessUsage {
                cpu_seconds: seconds,
                us_per_request: per_request(seconds),
            },
        );
    }
    (!by_process.is_empty()).then(|| Usage {
        window_seconds,
        requests,
        by_process,
        total_us_per_request: per_request(total),
    })
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields 14 and 15 of `/proc/<pid>/stat`; the command name (field 2) may hold spaces and
/// parentheses, so counting starts after its last `)`.
fn parse_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK` (100 on every Linux we run on, which is also the fallback).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn stat_fields_are_found_after_the_command_name() {
        let stat =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(stat), Some(300));
        assert_eq!(parse_stat("garbage"), None);
        let own = cpu_ticks(std::process::id());
        assert!(own.is_some(), "this process's own /proc/<pid>/stat reads");
    }

    #[test]
    fn usage_is_per_request_and_per_process() {
        let processes: Vec<Process> = ["gateway=1", "queue=2"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let measured = usage(
            &processes,
            &[Some(100), Some(10)],
            &[Some(300), Some(60)],
            100.0,
            10.0,
            10_000,
        )
        .unwrap();
        // 2 s of gateway CPU over 10,000 requests = 200 µs each; queue 0.5 s = 50 µs.
        assert_eq!(measured.by_process["gateway"].us_per_request, 200.0);
        assert_eq!(measured.by_process["queue"].us_per_request, 50.0);
        assert_eq!(measured.total_us_per_request, 250.0);
        assert!(usage(&[], &[], &[], 100.0, 1.0, 1).is_none());
        assert!("gateway".parse::<Process>().is_err());
        assert!("=3".parse::<Process>().is_err());
    }
}
