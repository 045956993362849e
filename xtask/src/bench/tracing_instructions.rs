//! What tracing adds counted in instructions (`plans::COUNTED_RUNS`): the queue pair and holds
//! one request at a time, every service under callgrind, instructions per request summed over
//! the services on the request's path. The stores are not counted: they do no tracing work.
//! Unlike CPU time, a count does not move with what else this shared machine does, so it can
//! tell whether tracing adds 2% or 3%; it counts user space only (the kernel's part of sending
//! spans is not in it).

use super::{
    cost::{HOLD_PATH, REQUESTS},
    format::{Results, show},
    plans::COUNTED_RUNS,
};

/// The requests counted: label, and where each run keeps its processes' figures.
const COUNTED_REQUESTS: [&str; 3] = ["issue-token", "check-queue", "hold"];

/// Instructions per request over the services on each counted request's path, in one setting
/// (`COUNTED_RUNS[setting]`); `None` where not counted.
fn counted(results: &Results, setting: usize) -> [Option<f64>; 3] {
    let (_, cost_run, holds_run) = COUNTED_RUNS[setting];
    let queue_pair = |request: usize| {
        let window = format!("/results/kinds/{}/cpu", REQUESTS[request].kind);
        sum(results, cost_run, &window, REQUESTS[request].path)
    };
    [
        queue_pair(0),
        queue_pair(1),
        sum(results, holds_run, "/results/cpu", HOLD_PATH),
    ]
}

/// The stores: on every path, in no count.
const STORES: [&str; 2] = ["redis", "postgresql"];

/// What the services on `path` executed per request in `run`'s window at `window` (its
/// `cpu` figures), less what they execute on their own over as long (the run's `idle`
/// window, when it has one: timers and background work, which a request at this low rate
/// would otherwise carry): what a request adds. `None` unless one service was counted.
fn sum(results: &Results, run: &str, window: &str, path: &[&str]) -> Option<f64> {
    let run = results.get(run)?;
    let number = |pointer: String| run.pointer(&pointer).and_then(serde_json::Value::as_f64);
    let per_request_second = match (
        number(format!("{window}/window_seconds")),
        number(format!("{window}/requests")),
    ) {
        (Some(seconds), Some(requests)) if requests > 0.0 => seconds / requests,
        _ => 0.0,
    };
    let idle_seconds = number("/results/idle/window_seconds".into()).filter(|s| *s > 0.0);
    let counts: Vec<f64> = path
        .iter()
        .filter(|process| !STORES.contains(process))
        .filter_map(|process| {
            let count = number(format!(
                "{window}/by_process/{process}/instructions_per_request"
            ))?;
            let background = idle_seconds
                .and_then(|seconds| {
                    let idle = number(format!(
                        "/results/idle/by_process/{process}/instructions_per_request"
                    ))?;
                    Some(idle / seconds * per_request_second)
                })
                .unwrap_or(0.0);
            Some(count - background)
        })
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// What the services execute per second with nothing sent, in one setting: the queue pair's
/// system and the holds' (`None` where not counted).
fn background(results: &Results, setting: usize) -> [Option<f64>; 2] {
    let (_, cost_run, holds_run) = COUNTED_RUNS[setting];
    [cost_run, holds_run].map(|run| {
        let idle = results.get(run)?.pointer("/results/idle")?;
        let seconds = idle.pointer("/window_seconds")?.as_f64()?;
        let counts: Vec<f64> = idle
            .pointer("/by_process")?
            .as_object()?
            .iter()
            .filter(|(process, _)| !STORES.contains(&process.as_str()))
            .filter_map(|(_, usage)| usage.pointer("/instructions_per_request")?.as_f64())
            .collect();
        (!counts.is_empty() && seconds > 0.0).then(|| counts.iter().sum::<f64>() / seconds)
    })
}

/// "2.13 M".
pub(super) fn millions(count: f64) -> String {
    format!("{:.2} M", count / 1e6)
}

/// Each counted request's instructions in `setting` against tracing off's: labels, the two
/// counts and the fraction added.
pub(super) fn against_off(
    results: &Results,
    setting: usize,
) -> Vec<(&'static str, Option<f64>, Option<f64>)> {
    let off = counted(results, 0);
    let now = counted(results, setting);
    COUNTED_REQUESTS
        .iter()
        .zip(off.into_iter().zip(now))
        .map(|(name, (off, now))| (*name, off, now))
        .collect()
}

/// docs/benchmarks.md's part on the counts: every setting's instructions per request.
pub(super) fn markdown(results: &Results) -> String {
    let settings: Vec<[Option<f64>; 3]> = (0..COUNTED_RUNS.len())
        .map(|setting| counted(results, setting))
        .collect();
    if settings
        .iter()
        .all(|counts| counts.iter().all(Option::is_none))
    {
        return String::new();
    }
    let mut out = String::from(
        "\nCounted in instructions (`instructions-*`, `holds-instructions-*`): every service \
         under Valgrind's callgrind, issue-token and check-queue one at a time at 40 a second, \
         holds one user at 25 a second, on a fresh system per setting; instructions per request \
         summed over the services on the request's path (the stores do no tracing work and are \
         not counted), less what the services execute on their own (timers, the queue's \
         admission ticks, the exporter's wake-ups) over as long, measured first with nothing \
         sent: what a request adds. A count does not move with what else the machine does, so \
         one run per setting resolves a difference of a fraction of a percent; it is user space \
         only.\n\n\
         | request | tracing off | 1% | 100% | 1% vs off | 100% vs off |\n\
         |---|---|---|---|---|---|\n",
    );
    for (i, name) in COUNTED_REQUESTS.iter().enumerate() {
        out.push_str(&row(name, [0, 1, 2].map(|setting| settings[setting][i])));
    }
    let backgrounds: Vec<[Option<f64>; 2]> = (0..COUNTED_RUNS.len())
        .map(|setting| background(results, setting))
        .collect();
    for (i, system) in ["the queue pair's system", "the holds' system"]
        .iter()
        .enumerate()
    {
        out.push_str(&row(
            &format!("{system} with nothing sent, per second"),
            [0, 1, 2].map(|setting| backgrounds[setting][i]),
        ));
    }
    out
}

/// One table row: the counts off, at 1% and at 100%, and the two against off.
fn row(label: &str, counts: [Option<f64>; 3]) -> String {
    let versus = |setting: usize| {
        super::tracing_cost::percent(super::tracing_cost::added(counts[0], counts[setting]))
    };
    format!(
        "| {label} | {} | {} | {} | {} | {} |\n",
        show(counts[0], millions),
        show(counts[1], millions),
        show(counts[2], millions),
        versus(1),
        versus(2),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::{counted, markdown};

    #[test]
    fn a_requests_count_is_less_the_background_its_window_carried() {
        let mut results = BTreeMap::new();
        // 400 requests in 10 s; with nothing sent the gateway executes 0.8 M a second, which
        // is 20,000 of each request's count; Redis is a store and never counted.
        let usage = |gateway: f64, queue: f64| {
            json!({"by_process": {
                "gateway": {"instructions_per_request": gateway},
                "queue": {"instructions_per_request": queue},
                "redis": {"instructions_per_request": 9e9},
            }})
        };
        let mut window = usage(1.2e6, 1.0e6);
        window["window_seconds"] = json!(10.0);
        window["requests"] = json!(400.0);
        let mut idle = usage(8e6, 0.0);
        idle["window_seconds"] = json!(10.0);
        results.insert(
            "instructions-off",
            json!({"results": {"kinds": {"issue-token": {"cpu": window}}, "idle": idle}}),
        );
        let [issue_token, check_queue, hold] = counted(&results, 0);
        assert_eq!(issue_token, Some(2.18e6));
        assert_eq!((check_queue, hold), (None, None));
        let section = markdown(&results);
        assert!(
            section.contains("| issue-token | 2.18 M | — | — | — | — |\n"),
            "{section}"
        );
        assert!(
            section.contains(
                "| the queue pair's system with nothing sent, per second | 0.80 M | — | — | — | — |\n"
            ),
            "{section}"
        );
        assert_eq!(markdown(&BTreeMap::new()), "");
    }
}
