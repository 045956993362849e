//! Recorded spans, queued and sent over OTLP/gRPC in batches from a thread of their own,
//! configured by the standard `OTEL_*` variables (`config.rs`).
//!
//! A span is handed over when it ends: one push on a mutex-guarded queue. The protobuf is
//! built on the export thread straight from the recorded spans (no intermediate SDK types).

use std::{
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use tonic::transport::Endpoint;

mod config;
mod sender;

pub use config::ExportConfig;
use sender::Sender;

use super::{record::Recorded, rule};

/// Spans ended and not yet sent.
struct Queue {
    spans: Mutex<Vec<Recorded>>,
    max_queue: usize,
    max_batch: usize,
    dropped: AtomicU64,
    /// Woken when a full batch is waiting.
    full: tokio::sync::Notify,
}

fn lock(queue: &Queue) -> MutexGuard<'_, Vec<Recorded>> {
    queue
        .spans
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

static QUEUE: OnceLock<Arc<Queue>> = OnceLock::new();

/// Hands an ended span to the exporter (dropped, and counted, when the queue is full).
pub(crate) fn submit(recorded: Recorded) {
    let Some(queue) = QUEUE.get() else {
        return;
    };
    let waiting = {
        let mut spans = lock(queue);
        if spans.len() >= queue.max_queue {
            drop(spans);
            queue.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        spans.push(recorded);
        spans.len()
    };
    if waiting == queue.max_batch {
        queue.full.notify_one();
    }
}

enum Control {
    Flush(mpsc::Sender<()>),
    Shutdown(mpsc::Sender<()>),
}

/// The running export: flushes and stops it when dropped.
pub struct Exporter {
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    timeout: Duration,
}

impl Exporter {
    /// Starts recording and exporting spans in this process. Fails when spans are already
    /// exported here (one pipeline per process) or the endpoint is not a URL.
    pub fn start(config: ExportConfig) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(config.endpoint.clone())?
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .timeout(config.timeout)
            .tcp_nodelay(true);
        let queue = Arc::new(Queue {
            spans: Mutex::new(Vec::with_capacity(config.max_batch)),
            max_queue: config.max_queue,
            max_batch: config.max_batch,
            dropped: AtomicU64::new(0),
            full: tokio::sync::Notify::new(),
        });
        QUEUE
            .set(queue.clone())
            .map_err(|_| anyhow::anyhow!("spans are already exported in this process"))?;
        let (control, commands) = tokio::sync::mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let timeout = config.timeout;
        let rule = config.rule;
        std::thread::Builder::new()
            .name("span-export".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let channel = endpoint.connect_lazy();
                    let sender = Sender::new(channel, &config);
                    run(queue, sender, config.schedule_delay, commands).await;
                });
            })?;
        rule::set_rule(rule);
        Ok(Self { control, timeout })
    }

    /// Sends every span ended so far; waits at most the export timeout.
    pub fn flush(&self) {
        self.ask(Control::Flush);
    }

    fn ask(&self, make: fn(mpsc::Sender<()>) -> Control) {
        let (done, finished) = mpsc::channel();
        if self.control.send(make(done)).is_ok() {
            // Bounded: a collector that does not answer must not hold up a stopping service.
            let _ = finished.recv_timeout(self.timeout.min(Duration::from_secs(3)));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.ask(Control::Shutdown);
    }
}

async fn run(
    queue: Arc<Queue>,
    mut sender: Sender,
    delay: Duration,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Control>,
) {
    loop {
        let command = tokio::select! {
            () = queue.full.notified() => None,
            () = tokio::time::sleep(delay) => None,
            command = commands.recv() => Some(command),
        };
        send_queued(&queue, &mut sender).await;
        match command {
            None => {}
            Some(Some(Control::Flush(done))) => {
                let _ = done.send(());
            }
            Some(Some(Control::Shutdown(done))) => {
                let _ = done.send(());
                return;
            }
            // Every handle is gone.
            Some(None) => return,
        }
    }
}

/// Sends what is queued, a batch at a time.
async fn send_queued(queue: &Queue, sender: &mut Sender) {
    loop {
        let batch = {
            let mut spans = lock(queue);
            if spans.len() <= queue.max_batch {
                let capacity = spans.len().max(16);
                std::mem::replace(&mut *spans, Vec::with_capacity(capacity))
            } else {
                let rest = spans.split_off(queue.max_batch);
                std::mem::replace(&mut *spans, rest)
            }
        };
        if batch.is_empty() {
            break;
        }
        let full = batch.len() == queue.max_batch;
        sender.send(batch).await;
        let dropped = queue.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            sender.problems.dropped += dropped;
        }
        if !full {
            break;
        }
    }
    sender.problems.report();
}
