//! Keeps `cargo xtask up`'s processes running as Kubernetes keeps pods: a process that exits is
//! started again after a backoff that doubles with each restart in a row (0.5 s, 1 s, 2 s, …
//! up to 30 s) and starts over once the process has stayed up for 30 s. Each restart is logged
//! with the exit status and the wait.

use std::{collections::HashMap, future::Future, process::ExitStatus, time::Duration};

use tokio::{process::Child, time::Instant};

/// How long to wait before restart number `n` in a row.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Up this long, a process's next exit counts as the first in a row again.
    pub settled_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
            settled_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before the `in_a_row`-th restart in a row (1 = the first).
    pub fn delay(&self, in_a_row: u32) -> Duration {
        let doublings = in_a_row.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What one restart was.
#[derive(Debug)]
pub struct Restart {
    pub name: &'static str,
    /// How the process ended (None: its status could not be read).
    pub status: Option<ExitStatus>,
    pub waited: Duration,
    /// Restarts of this process in a row, this one included.
    pub in_a_row: u32,
}

/// Restarts the processes in `running` as they exit.
#[derive(Debug)]
pub struct Supervisor {
    backoff: Backoff,
    /// Per process: restarts in a row, and when it was last started.
    history: HashMap<&'static str, (u32, Instant)>,
}

impl Supervisor {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            history: HashMap::new(),
        }
    }

    /// Waits until a process in `running` exits, waits its backoff, and puts in its place what
    /// `respawn` starts for its name. A process that cannot be started again is an error.
    pub async fn restart_next(
        &mut self,
        running: &mut [(&'static str, Child)],
        respawn: impl FnOnce(&'static str) -> anyhow::Result<Child>,
    ) -> anyhow::Result<Restart> {
        let Some((index, status)) = next_exit(running).await else {
            return std::future::pending().await;
        };
        let name = running[index].0;
        let now = Instant::now();
        let (in_a_row, started) = self.history.get(name).copied().unwrap_or((0, now));
        let in_a_row = if now.duration_since(started) >= self.backoff.settled_after {
            1
        } else {
            in_a_row + 1
        };
        let waited = self.backoff.delay(in_a_row);
        eprintln!(
            "xtask: {name} exited ({}); restarting it in {waited:?} (restart {in_a_row} in a row)",
            status.map_or("status unknown".into(), |status| status.to_string()),
        );
        tokio::time::sleep(waited).await;
        running[index].1 = respawn(name)?;
        self.history.insert(name, (in_a_row, Instant::now()));
        Ok(Restart {
            name,
            status,
            waited,
            in_a_row,
        })
    }
}

impl Supervisor {
    /// Keeps the processes in `running` up — each that exits is started again by `respawn`
    /// after its backoff, and the restart logged — until `until` completes; answers its
    /// output. A process that cannot be started again ends it with that error.
    pub async fn keep_up_until<T>(
        &mut self,
        running: &mut [(&'static str, Child)],
        respawn: impl Fn(&'static str) -> anyhow::Result<Child>,
        until: impl Future<Output = T>,
    ) -> anyhow::Result<T> {
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                // What `until` stands for (Ctrl-C, a run's end) reaches the processes too:
                // their exits then are the stop, not crashes.
                biased;
                output = &mut until => return Ok(output),
                restarted = self.restart_next(running, &respawn) => {
                    let restart = restarted?;
                    eprintln!(
                        "xtask: {} started again, {:?} after it exited ({}; restart {} in a row)",
                        restart.name,
                        restart.waited,
                        restart.status.map_or("status unknown".into(), |s| s.to_string()),
                        restart.in_a_row
                    );
                }
            }
        }
    }
}

/// The index of the first process in `running` to exit, and its status (None: nothing runs).
async fn next_exit(running: &mut [(&'static str, Child)]) -> Option<(usize, Option<ExitStatus>)> {
    if running.is_empty() {
        return None;
    }
    let waits = running
        .iter_mut()
        .enumerate()
        .map(|(index, (_, child))| Box::pin(async move { (index, child.wait().await.ok()) }));
    Some(futures::future::select_all(waits).await.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sh(script: &str) -> anyhow::Result<Child> {
        Ok(tokio::process::Command::new("sh")
            .args(["-c", script])
            .kill_on_drop(true)
            .spawn()?)
    }

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling() {
        let backoff = Backoff::default();
        let waits: Vec<_> = (1..=9).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff.delay(u32::MAX), backoff.max);
    }

    #[tokio::test]
    async fn a_process_that_dies_is_started_again_and_the_others_keep_running() {
        let backoff = Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(40),
            settled_after: Duration::from_secs(60),
        };
        let mut supervisor = Supervisor::new(backoff);
        let mut running = vec![
            ("steady", sh("sleep 60").unwrap()),
            ("crashing", sh("exit 3").unwrap()),
        ];
        let steady = running[0].1.id();
        let mut waits = Vec::new();
        for _ in 0..3 {
            let restart = supervisor
                .restart_next(&mut running, |name| {
                    assert_eq!(name, "crashing");
                    sh("exit 3")
                })
                .await
                .unwrap();
            assert_eq!(restart.name, "crashing");
            assert_eq!(restart.status.and_then(|s| s.code()), Some(3));
            waits.push((restart.in_a_row, restart.waited.as_millis()));
        }
        // Restarted each time, waiting longer each time in a row, up to the ceiling.
        assert_eq!(waits, [(1, 10), (2, 20), (3, 40)]);
        assert_eq!(
            running[0].1.id(),
            steady,
            "the steady process was left alone"
        );
        assert!(running[0].1.try_wait().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_process_that_stayed_up_long_enough_starts_its_backoff_over() {
        let backoff = Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_secs(1),
            settled_after: Duration::ZERO,
        };
        let mut supervisor = Supervisor::new(backoff);
        let mut running = vec![("crashing", sh("exit 1").unwrap())];
        for _ in 0..3 {
            let restart = supervisor
                .restart_next(&mut running, |_| sh("exit 1"))
                .await
                .unwrap();
            assert_eq!(restart.in_a_row, 1);
        }
    }

    #[tokio::test]
    async fn a_process_that_cannot_be_started_again_is_an_error() {
        let mut supervisor = Supervisor::new(Backoff {
            first: Duration::from_millis(1),
            ..Backoff::default()
        });
        let mut running = vec![("crashing", sh("exit 1").unwrap())];
        let error = supervisor
            .restart_next(&mut running, |_| anyhow::bail!("no binary"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("no binary"));
    }

    #[tokio::test]
    async fn processes_are_kept_up_until_the_future_completes_and_its_output_is_answered() {
        let mut supervisor = Supervisor::new(Backoff {
            first: Duration::from_millis(1),
            ..Backoff::default()
        });
        let mut running = vec![("crashing", sh("exit 1").unwrap())];
        let restarts = std::sync::atomic::AtomicU32::new(0);
        let (tell, told) = tokio::sync::oneshot::channel();
        let tell = std::sync::Mutex::new(Some(tell));
        let respawn = |_| {
            // The third restart ends the wait.
            if restarts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2
                && let Some(tell) = tell.lock().unwrap().take()
            {
                let _ = tell.send(7);
            }
            sh("exit 1")
        };
        let output = supervisor
            .keep_up_until(&mut running, respawn, async { told.await.unwrap() })
            .await
            .unwrap();
        assert_eq!(output, 7);
        assert_eq!(restarts.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
