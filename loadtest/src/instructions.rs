//! Instructions a process executed over a measured window, for processes run under Valgrind's
//! callgrind (`cargo xtask bench` starts the services so for its instruction-counting runs):
//! the counters are zeroed when the window starts and read when it ends, through
//! `callgrind_control`. Unlike CPU time, the count does not move with what else the machine is
//! doing, so a difference of a few percent between two settings can be told from noise. It
//! counts user space only: what the kernel does for a process's system calls is not in it.

use std::{process::Stdio, time::Duration};

use anyhow::{Context, bail};

/// Each `callgrind_control` call waits at most this long (it reaches the process through
/// vgdb, which interrupts a process blocked in a system call within a fraction of a second).
const DEADLINE: Duration = Duration::from_secs(20);

/// Whether `pid` runs under callgrind: its executable is Valgrind's callgrind tool.
pub fn counted(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|exe| exe.to_string_lossy().contains("callgrind"))
        .unwrap_or(false)
}

/// Zeroes `pid`'s counters: what it executes from now on is counted.
pub async fn zero(pid: u32) -> anyhow::Result<()> {
    control(&["--zero", &pid.to_string()]).await.map(|_| ())
}

/// Instructions `pid` executed since its counters were last zeroed, all its threads.
pub async fn read(pid: u32) -> anyhow::Result<u64> {
    let out = control(&["-e", "Ir", "--stat", &pid.to_string()]).await?;
    totals(&out).with_context(|| format!("no instruction totals in callgrind_control's {out:?}"))
}

/// Whether `pid`'s callgrind was told to keep its profiles (a `--callgrind-out-file` other than
/// `/dev/null`, where the bench's counting runs send them unless asked to keep them).
pub fn keeps_profiles(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline.split(|byte| *byte == 0).any(|arg| {
            arg.strip_prefix(b"--callgrind-out-file=")
                .is_some_and(|file| file != b"/dev/null")
        })
    })
}

/// Writes `pid`'s profile since its counters were last zeroed as the next numbered part of its
/// profile file, named `label` inside; the counters start again from zero.
pub async fn dump(pid: u32, label: &str) -> anyhow::Result<()> {
    control(&[&format!("--dump={label}"), &pid.to_string()])
        .await
        .map(|_| ())
}

/// `callgrind_control` with `args`, killed past [`DEADLINE`]; its standard output.
async fn control(args: &[&str]) -> anyhow::Result<String> {
    let program = crate::programs::find("callgrind_control")
        .context("callgrind_control (Debian's valgrind) is not installed")?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .with_context(|| format!("callgrind_control {args:?} took longer than {DEADLINE:?}"))?
        .context("running callgrind_control")?;
    if !output.status.success() {
        bail!(
            "callgrind_control {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The sum of the per-thread lines under `Totals:` (`   Th 2  1,234,567`).
fn totals(stat: &str) -> Option<u64> {
    let mut lines = stat
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("Totals:"));
    lines.next()?;
    let mut sum = 0_u64;
    let mut threads = 0;
    for line in lines {
        let mut words = line.split_whitespace();
        if words.next() != Some("Th") {
            break;
        }
        words.next()?;
        let count: u64 = words.next()?.replace(',', "").parse().ok()?;
        sum += count;
        threads += 1;
    }
    (threads > 0).then_some(sum)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::{
        io::{BufRead, BufReader, Write},
        process::Command,
    };

    use super::*;

    #[test]
    fn totals_sum_every_threads_count_and_read_thousands_separators() {
        let stat = "PID 22376: loadtest bare-relay\n\
                    sending command status internal to pid 22376\n\
                    \x20 Functions: 4,888 (executed 12,516,774, contexts 4,888)\n\
                    \x20 Basic blocks: 19,787 (executed 84,887,074, call sites 5,848)\n\
                    \n\
                    \x20 Totals: Ir \n\
                    \x20  Th 1    0 \n\
                    \x20  Th 2  1,928 \n\
                    \x20  Th 3  12 \n";
        assert_eq!(totals(stat), Some(1_940));
        assert_eq!(totals("PID 1: nothing\n"), None);
        assert_eq!(totals("  Totals: Ir\n"), None, "no thread: nothing counted");
    }

    /// A process under callgrind that does a fixed amount of work per line it is sent, and
    /// says when it has done it.
    struct Worker {
        child: std::process::Child,
        answers: BufReader<std::process::ChildStdout>,
    }

    impl Worker {
        fn start() -> Self {
            Self::start_writing("/dev/null")
        }

        /// Under callgrind writing its profiles to `file`.
        fn start_writing(file: &str) -> Self {
            let mut child = Command::new(crate::programs::find("valgrind").unwrap())
                .arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={file}"))
                .args([
                    "sh",
                    "-c",
                    "while read line; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; \
                     echo done; done",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let answers = BufReader::new(child.stdout.take().unwrap());
            let mut worker = Self { child, answers };
            worker.work(1);
            worker
        }

        /// Sends `n` lines and waits for their `n` answers.
        fn work(&mut self, n: usize) {
            let stdin = self.child.stdin.as_mut().unwrap();
            for _ in 0..n {
                writeln!(stdin, "go").unwrap();
            }
            stdin.flush().unwrap();
            for _ in 0..n {
                let mut line = String::new();
                self.answers.read_line(&mut line).unwrap();
                assert_eq!(line.trim(), "done");
            }
        }
    }

    impl Drop for Worker {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    async fn a_window_counts_what_the_process_executed_in_it_and_not_before() {
        let mut worker = Worker::start();
        let pid = worker.child.id();
        assert!(counted(pid), "a process under callgrind is known as one");
        assert!(!counted(std::process::id()), "this test is not");
        zero(pid).await.unwrap();
        worker.work(3);
        let three = read(pid).await.unwrap();
        zero(pid).await.unwrap();
        worker.work(6);
        let six = read(pid).await.unwrap();
        // Twice the work, twice the count (what the shell does to read and answer a line is
        // in both), within a tenth: were the counters not zeroed, six would hold three's too.
        let ratio = six as f64 / three as f64;
        assert!((1.8..2.2).contains(&ratio), "{three} then {six}: {ratio}");
    }

    #[tokio::test]
    async fn a_window_is_kept_as_a_profile_only_by_a_process_told_where_to_keep_them() {
        let dir = std::env::temp_dir().join(format!("loadtest-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut kept = Worker::start_writing(&format!("{}/worker.%p", dir.display()));
        let pid = kept.child.id();
        assert!(keeps_profiles(pid));
        let probe = crate::cpu::Probe::new(vec![crate::cpu::Process {
            name: "worker".into(),
            selector: crate::cpu::Selector::Pid(pid),
        }]);
        let window = probe.start().await;
        kept.work(2);
        window.finish(2).await.expect("measured");
        let part = dir.join(format!("worker.{pid}.1"));
        let profile = std::fs::read_to_string(&part).unwrap();
        assert!(profile.contains("events: Ir"), "{profile}");
        assert!(profile.contains("window"), "the dump is named: {profile}");
        std::fs::remove_dir_all(&dir).unwrap();

        let not_kept = Worker::start();
        assert!(!keeps_profiles(not_kept.child.id()));
        assert!(!keeps_profiles(std::process::id()));
    }

    #[tokio::test]
    async fn a_cpu_window_charges_a_process_under_callgrind_its_instructions_per_request() {
        let mut worker = Worker::start();
        let pid = worker.child.id();
        let probe = crate::cpu::Probe::new(vec![crate::cpu::Process {
            name: "worker".into(),
            selector: crate::cpu::Selector::Pid(pid),
        }]);
        let window = probe.start().await;
        worker.work(4);
        let usage = window.finish(4).await.expect("measured");
        let per_request = usage.by_process["worker"]
            .instructions_per_request
            .expect("counted");
        zero(pid).await.unwrap();
        worker.work(1);
        let one = read(pid).await.unwrap() as f64;
        let ratio = per_request / one;
        assert!(
            (0.9..1.1).contains(&ratio),
            "{per_request} per request, one line {one}"
        );
    }

    #[tokio::test]
    async fn an_idle_window_counts_what_a_process_does_with_nothing_sent_and_only_under_callgrind()
    {
        let mut worker = Worker::start();
        let pid = worker.child.id();
        zero(pid).await.unwrap();
        worker.work(1);
        let one_line = read(pid).await.unwrap() as f64;
        let probe = crate::cpu::Probe::new(vec![crate::cpu::Process {
            name: "worker".into(),
            selector: crate::cpu::Selector::Pid(pid),
        }]);
        let idle = probe.idle(0.3).await.expect("counted");
        let waiting = idle.by_process["worker"]
            .instructions_per_request
            .expect("counted");
        assert!(
            waiting < one_line / 10.0,
            "{waiting} idle against {one_line} a line"
        );
        let uncounted = crate::cpu::Probe::new(vec![crate::cpu::Process {
            name: "self".into(),
            selector: crate::cpu::Selector::Pid(std::process::id()),
        }]);
        assert!(uncounted.idle(0.3).await.is_none());
    }
}
