//! CPU time of the system's processes over a measured window: utime + stime from
//! `/proc/<pid>/stat` before and after, per request. `cargo xtask bench` passes the services'
//! pids (`--cpu-pid gateway=1234 ...`) and the stores by command name
//! (`--cpu-pid postgresql=comm:postgres`); without any the window measures nothing. The load
//! generator's own CPU (`/proc/self`) is recorded beside them, never in their total.
//!
//! A command name selects every process whose `comm` is that name when the window starts and
//! when it ends (PostgreSQL runs one process per connection). Such a family is charged
//! utime + stime + cutime + cstime: a member that exits inside the window is reaped by its
//! parent (the postmaster), whose cutime/cstime then carry what it used. What remains wrong:
//! a member that started before the window and exits inside it charges its CPU from before the
//! window too (through its parent), and one whose parent is not in the family is lost. The
//! bench's stores keep pooled connections for the whole run, so neither happens there;
//! `processes` and `exited` in the report say when it did.
//!
//! A process given by pid that runs under callgrind is also charged the instructions it
//! executed in the window (`crate::instructions`), per request.

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;

use crate::instructions;

/// A process to watch, `name=pid` or `name=comm:COMMAND` on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub name: String,
    pub selector: Selector,
}

/// Which processes a name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Pid(u32),
    /// Every process whose command name (`/proc/<pid>/comm`) is this.
    Comm(String),
}

/// The kernel keeps 15 bytes of a command name (TASK_COMM_LEN 16 with its NUL).
const COMM_MAX: usize = 15;

impl std::str::FromStr for Process {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || format!("expected name=pid or name=comm:COMMAND, got {text:?}");
        let (name, what) = text.split_once('=').ok_or_else(expected)?;
        if name.is_empty() {
            return Err(expected());
        }
        let selector = match what.strip_prefix("comm:") {
            Some("") => return Err(expected()),
            Some(comm) if comm.len() > COMM_MAX => {
                return Err(format!(
                    "{comm:?} is longer than the {COMM_MAX} bytes the kernel keeps of a command name"
                ));
            }
            Some(comm) => Selector::Comm(comm.to_owned()),
            None => Selector::Pid(
                what.parse()
                    .map_err(|_| format!("{what:?} is not a process id"))?,
            ),
        };
        Ok(Self {
            name: name.to_owned(),
            selector,
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
    before: Vec<Snapshot>,
    own_before: Snapshot,
    /// Per process: when it runs under callgrind and its counters were zeroed.
    counted: Vec<Option<Counted>>,
}

/// A process under callgrind, as a window found it.
#[derive(Clone, Copy)]
struct Counted {
    pid: u32,
    /// It keeps profiles: the window's is dumped when the window ends.
    keeps_profiles: bool,
}

/// Ticks by pid of the processes one name stands for (empty: none could be read).
type Snapshot = BTreeMap<u32, u64>;

/// What the window cost.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Usage {
    pub window_seconds: f64,
    pub requests: u64,
    /// Per process: CPU seconds in the window and microseconds per request.
    pub by_process: BTreeMap<String, ProcessUsage>,
    /// The processes together, µs per request.
    pub total_us_per_request: f64,
    /// This load generator (`/proc/self`; with `--collect-spans` also the span collector, which
    /// runs inside it). Not in the total: it is the client, not the system.
    pub load_generator: Option<ProcessUsage>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ProcessUsage {
    pub cpu_seconds: f64,
    pub us_per_request: f64,
    /// Processes seen at the window's end (1 for a pid).
    pub processes: usize,
    /// Processes seen at the start but gone at the end (see the module's note).
    pub exited: usize,
    /// Instructions per request, for a process under callgrind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions_per_request: Option<f64>,
}

impl Probe {
    pub fn new(processes: Vec<Process>) -> Self {
        Self {
            processes,
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    /// The processes it charges.
    pub fn processes(&self) -> &[Process] {
        &self.processes
    }

    /// What the processes do over `seconds` with nothing sent to them (timers, background
    /// work), when one of them runs under callgrind: its instructions per second are what a
    /// request's count is corrected by (see `Usage`); `None` when none is counted. The figures
    /// "per request" are the window's totals (no request).
    pub async fn idle(&self, seconds: f64) -> Option<Usage> {
        if !self
            .processes
            .iter()
            .any(|process| counted_pid(process).is_some())
        {
            return None;
        }
        eprintln!("cpu: {seconds} s with nothing sent, for the processes' own background");
        let window = self.start().await;
        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
        window.finish(0).await
    }

    pub async fn start(&self) -> Window<'_> {
        // Zeroed before the ticks are read: what callgrind_control makes the process do falls
        // outside the window.
        let mut counted = Vec::with_capacity(self.processes.len());
        for process in &self.processes {
            let zeroed = match counted_pid(process) {
                Some(pid) => match instructions::zero(pid).await {
                    Ok(()) => Some(Counted {
                        pid,
                        keeps_profiles: instructions::keeps_profiles(pid),
                    }),
                    Err(error) => {
                        eprintln!("cpu: {}: instructions not counted: {error:#}", process.name);
                        None
                    }
                },
                None => None,
            };
            counted.push(zeroed);
        }
        Window {
            probe: self,
            started: Instant::now(),
            before: self.snapshots(),
            own_before: own_snapshot(),
            counted,
        }
    }

    fn snapshots(&self) -> Vec<Snapshot> {
        let needs_scan = self
            .processes
            .iter()
            .any(|p| matches!(p.selector, Selector::Comm(_)));
        let all = if needs_scan { scan_proc() } else { Vec::new() };
        self.processes
            .iter()
            .map(|process| snapshot(&process.selector, &all))
            .collect()
    }
}

impl Window<'_> {
    /// The CPU each process used since [`Probe::start`], per request; `None` without
    /// processes (or when none could be read).
    pub async fn finish(self, requests: u64) -> Option<Usage> {
        let after = self.probe.snapshots();
        let window_seconds = self.started.elapsed().as_secs_f64();
        let mut measured = usage(
            &self.probe.processes,
            &self.before,
            &after,
            self.probe.ticks_per_second,
            window_seconds,
            requests,
        )?;
        measured.load_generator = charge(
            &self.own_before,
            &own_snapshot(),
            self.probe.ticks_per_second,
            requests,
        );
        for (process, counted) in self.probe.processes.iter().zip(&self.counted) {
            let (
                Some(Counted {
                    pid,
                    keeps_profiles,
                }),
                Some(usage),
            ) = (counted, measured.by_process.get_mut(&process.name))
            else {
                continue;
            };
            match instructions::read(*pid).await {
                Ok(count) => {
                    usage.instructions_per_request = Some(count as f64 / requests.max(1) as f64);
                }
                Err(error) => {
                    eprintln!("cpu: {}: instructions not read: {error:#}", process.name);
                }
            }
            // The window's profile, where the process keeps them (`cargo xtask bench
            // --profiles`): where its instructions went, function by function.
            if *keeps_profiles && let Err(error) = instructions::dump(*pid, "window").await {
                eprintln!("cpu: {}: profile not kept: {error:#}", process.name);
            }
        }
        Some(measured)
    }
}

/// The pid of a process given by pid that runs under callgrind.
fn counted_pid(process: &Process) -> Option<u32> {
    match process.selector {
        Selector::Pid(pid) if instructions::counted(pid) => Some(pid),
        _ => None,
    }
}

fn usage(
    processes: &[Process],
    before: &[Snapshot],
    after: &[Snapshot],
    ticks_per_second: f64,
    window_seconds: f64,
    requests: u64,
) -> Option<Usage> {
    let mut by_process = BTreeMap::new();
    let mut total = 0.0;
    for ((process, before), after) in processes.iter().zip(before).zip(after) {
        let Some(charged) = charge(before, after, ticks_per_second, requests) else {
            continue;
        };
        total += charged.cpu_seconds;
        by_process.insert(process.name.clone(), charged);
    }
    (!by_process.is_empty()).then(|| Usage {
        window_seconds,
        requests,
        by_process,
        total_us_per_request: per_request(total, requests),
        load_generator: None,
    })
}

fn per_request(seconds: f64, requests: u64) -> f64 {
    seconds * 1e6 / requests.max(1) as f64
}

/// What one name's processes used between two snapshots; `None` when none was there at the
/// end. A process that appeared in the window is charged all its ticks (all of them are in
/// the window).
fn charge(
    before: &Snapshot,
    after: &Snapshot,
    ticks_per_second: f64,
    requests: u64,
) -> Option<ProcessUsage> {
    if after.is_empty() {
        return None;
    }
    let ticks: u64 = after
        .iter()
        .map(|(pid, ticks)| ticks.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum();
    let seconds = ticks as f64 / ticks_per_second;
    Some(ProcessUsage {
        cpu_seconds: seconds,
        us_per_request: per_request(seconds, requests),
        processes: after.len(),
        exited: before.keys().filter(|pid| !after.contains_key(pid)).count(),
        instructions_per_request: None,
    })
}

/// One process's `/proc/<pid>/stat`, as much as a window needs.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    comm: String,
    /// utime + stime.
    own: u64,
    /// cutime + cstime: reaped children's.
    children: u64,
}

fn snapshot(selector: &Selector, all: &[(u32, Stat)]) -> Snapshot {
    match selector {
        Selector::Pid(pid) => read_stat(*pid)
            .map(|stat| (*pid, stat.own))
            .into_iter()
            .collect(),
        Selector::Comm(comm) => all
            .iter()
            .filter(|(_, stat)| &stat.comm == comm)
            .map(|(pid, stat)| (*pid, stat.own + stat.children))
            .collect(),
    }
}

fn own_snapshot() -> Snapshot {
    snapshot(&Selector::Pid(std::process::id()), &[])
}

/// Every process's stat (threads are not listed at the top of /proc: a process's stat already
/// sums its threads). Processes that exit while being read are skipped.
fn scan_proc() -> Vec<(u32, Stat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .collect()
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 2 (the command name, in parentheses) and fields 14–17 of `/proc/<pid>/stat`; the name
/// may hold spaces and parentheses, so it ends at the last `)` and counting starts after it.
fn parse_stat(stat: &str) -> Option<Stat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let mut fields = stat[close + 1..].split_whitespace().skip(11);
    let mut next = || fields.next()?.parse::<i64>().ok();
    let (utime, stime, cutime, cstime) = (next()?, next()?, next()?, next()?);
    // cutime/cstime are signed in the kernel's format; never negative in practice.
    let ticks = |a: i64, b: i64| (a.max(0) + b.max(0)) as u64;
    Some(Stat {
        comm,
        own: ticks(utime, stime),
        children: ticks(cutime, cstime),
    })
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

    fn snapshot_of(pairs: &[(u32, u64)]) -> Snapshot {
        pairs.iter().copied().collect()
    }

    #[test]
    fn stat_fields_are_found_after_the_command_name() {
        let stat =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 7 3 20 0 9 0 100 0 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                comm: "tokio (rt) x".into(),
                own: 300,
                children: 10
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2 3"), None, "too few fields");
        let own = read_stat(std::process::id());
        assert!(own.is_some(), "this process's own /proc/<pid>/stat reads");
    }

    #[test]
    fn names_stand_for_a_pid_or_a_command_name() {
        assert_eq!(
            "gateway=12".parse::<Process>(),
            Ok(Process {
                name: "gateway".into(),
                selector: Selector::Pid(12)
            })
        );
        assert_eq!(
            "postgresql=comm:postgres".parse::<Process>(),
            Ok(Process {
                name: "postgresql".into(),
                selector: Selector::Comm("postgres".into())
            })
        );
        for wrong in [
            "gateway",
            "=3",
            "x=comm:",
            "x=pid",
            "x=comm:sixteen-letters!",
        ] {
            assert!(wrong.parse::<Process>().is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_command_name_sums_every_process_that_has_it() {
        let stat = |comm: &str, own: u64, children: u64| Stat {
            comm: comm.into(),
            own,
            children,
        };
        let all = vec![
            (10, stat("postgres", 100, 40)),
            (11, stat("postgres", 5, 0)),
            (12, stat("redis-server", 70, 0)),
        ];
        // A family counts its reaped children; a single pid only itself.
        assert_eq!(
            snapshot(&Selector::Comm("postgres".into()), &all),
            snapshot_of(&[(10, 140), (11, 5)])
        );
        assert!(snapshot(&Selector::Comm("nginx".into()), &all).is_empty());

        // Start: postmaster 10 and backend 11. End: 11 exited (reaped: its 3 further ticks
        // moved into 10's children), 13 started during the window.
        let before = snapshot_of(&[(10, 140), (11, 5)]);
        let after = snapshot_of(&[(10, 150), (13, 20)]);
        let charged = charge(&before, &after, 100.0, 1000).unwrap();
        assert_eq!(charged.cpu_seconds, 0.3);
        assert_eq!(charged.us_per_request, 300.0);
        assert_eq!((charged.processes, charged.exited), (2, 1));
        assert!(charge(&before, &Snapshot::new(), 100.0, 1).is_none());

        // The real /proc: this test's own command name selects at least itself.
        let own = read_stat(std::process::id()).unwrap();
        let process: Process = format!("self=comm:{}", own.comm).parse().unwrap();
        let found = snapshot(&process.selector, &scan_proc());
        assert!(found.contains_key(&std::process::id()), "{found:?}");
    }

    #[test]
    fn usage_is_per_request_and_per_process() {
        let processes: Vec<Process> = ["gateway=1", "queue=2", "postgresql=comm:postgres"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let measured = usage(
            &processes,
            &[
                snapshot_of(&[(1, 100)]),
                snapshot_of(&[(2, 10)]),
                Snapshot::new(),
            ],
            &[
                snapshot_of(&[(1, 300)]),
                snapshot_of(&[(2, 60)]),
                Snapshot::new(),
            ],
            100.0,
            10.0,
            10_000,
        )
        .unwrap();
        // 2 s of gateway CPU over 10,000 requests = 200 µs each; queue 0.5 s = 50 µs.
        assert_eq!(measured.by_process["gateway"].us_per_request, 200.0);
        assert_eq!(measured.by_process["queue"].us_per_request, 50.0);
        assert_eq!(measured.total_us_per_request, 250.0);
        assert!(
            !measured.by_process.contains_key("postgresql"),
            "a name with no process is left out, not charged 0"
        );
        assert!(usage(&[], &[], &[], 100.0, 1.0, 1).is_none());
    }

    #[tokio::test]
    async fn the_window_reads_this_process_as_the_load_generator() {
        let pid = std::process::id();
        let probe = Probe::new(vec![format!("me={pid}").parse().unwrap()]);
        let window = probe.start().await;
        let measured = window.finish(1).await.unwrap();
        let own = measured.load_generator.unwrap();
        assert_eq!((own.processes, own.exited), (1, 0));
        assert!(
            Probe::new(Vec::new())
                .start()
                .await
                .finish(1)
                .await
                .is_none()
        );
    }
}
