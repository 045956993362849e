//! The standard set of runs: the systems they need (admission, seed, tracing, identity) and
//! each run's load-generator arguments, full or `--quick`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{COLLECTOR, faults, presale};
use crate::launch::AuthMode;

/// Tracing settings a run is measured under.
#[derive(Clone, Copy, Debug)]
pub(super) enum Tracing {
    Off,
    /// Spans exported to the load generator, which collects them for the run's breakdown.
    Sampled(f64),
    /// Spans exported to the load generator, which answers and discards them: what tracing
    /// costs the services, without a collector decoding on the same cores.
    Discarded(f64),
}

impl Tracing {
    pub(super) fn env(self) -> Vec<(&'static str, String)> {
        match self {
            // Also when the user's environment names a collector.
            Self::Off => vec![("OTEL_TRACES_EXPORTER", "none".into())],
            Self::Sampled(ratio) | Self::Discarded(ratio) => {
                let mut env = vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{COLLECTOR}")),
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".into()),
                    ("OTEL_TRACES_SAMPLER_ARG", ratio.to_string()),
                    // Buffer enough that a 100% run loses no spans.
                    ("OTEL_BSP_MAX_QUEUE_SIZE", "262144".into()),
                    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096".into()),
                ];
                // The breakdown's spans exported often, so the collector has a run's spans
                // soon after it; what tracing costs is measured at the standard delay (5 s,
                // as production runs), since each export call's own cost is shared by the
                // spans in it.
                if let Self::Sampled(_) = self {
                    env.push(("OTEL_BSP_SCHEDULE_DELAY", "500".into()));
                }
                env
            }
        }
    }
}

/// The system a run needs.
#[derive(Clone, Copy, Debug)]
pub(super) struct System {
    pub(super) admission_rate: Option<f64>,
    pub(super) active_cap: Option<u32>,
    /// Concerts × options × seats seeded.
    pub(super) seed: (i64, i64, i32),
    pub(super) tracing: Tracing,
    /// The gateway's identity mode (jwt: the development key, tokens minted by the generator).
    pub(super) auth: AuthMode,
    /// RESERVATION_MAX_SEATS_PER_USER (None: the service's default, 4 per user per concert).
    pub(super) max_seats_per_user: Option<u32>,
    /// Seats of one presale concert seeded after the others (its own waiting room), and the
    /// operator's admin token given to the run.
    pub(super) presale_seats: Option<i32>,
    /// Processes of each service.
    pub(super) replicas: u16,
    /// The faults run's system: on private stores of its own, its processes kept up by a
    /// supervisor (a killed one is started again), and the load generator told which
    /// processes to inject faults into.
    pub(super) faults: bool,
    /// Every service under callgrind, which counts the instructions it executes.
    pub(super) counted: bool,
}

/// One run of the standard set.
pub(super) struct Plan {
    pub(super) name: &'static str,
    /// `None`: the run measures the machine, not the system.
    pub(super) system: Option<System>,
    pub(super) args: Vec<String>,
}

fn args(words: &str) -> Vec<String> {
    words.split_whitespace().map(str::to_owned).collect()
}

/// The original waiting room admitted a few per second; these runs use the default (10/s).
pub(super) const WAITING_ROOM: System = System {
    admission_rate: None,
    active_cap: None,
    seed: (1, 10, 50),
    tracing: Tracing::Off,
    auth: AuthMode::Trusted,
    max_seats_per_user: None,
    presale_seats: None,
    replicas: 1,
    faults: false,
    counted: false,
};

/// Everyone admitted at once: for runs that measure seats, not the waiting room.
const OPEN_DOORS: System = System {
    admission_rate: Some(10_000.0),
    active_cap: Some(0),
    seed: (1, 100, 1000),
    tracing: Tracing::Off,
    auth: AuthMode::Trusted,
    max_seats_per_user: None,
    presale_seats: None,
    replicas: 1,
    faults: false,
    counted: false,
};

/// Open doors for `holds`: 32 users hold thousands of seats each, so the per-user seat limit
/// (4 per concert by default) is off — the run measures how fast seats are held, not the
/// limit refusing them.
const HOLDS: System = System {
    max_seats_per_user: Some(0),
    ..OPEN_DOORS
};

/// Admission well above the arrival rate, every span collected for the breakdown.
const BOOKING: System = System {
    admission_rate: Some(50.0),
    active_cap: Some(0),
    seed: (1, 100, 1000),
    tracing: Tracing::Sampled(1.0),
    auth: AuthMode::Trusted,
    max_seats_per_user: None,
    presale_seats: None,
    replicas: 1,
    faults: false,
    counted: false,
};

/// The faults run's: BOOKING's admission and seats with tracing off, two replicas of every
/// service (so there is one to kill), supervised, on private stores it may stall and restart.
const FAULTS: System = System {
    tracing: Tracing::Off,
    replicas: 2,
    faults: true,
    ..BOOKING
};

/// `cargo xtask up`'s system (demo data, the default admission), for what one request costs.
const COST: System = WAITING_ROOM;

/// A presale concert (its own room) beside the demo data; the run schedules its opening.
const PRESALE: System = System {
    presale_seats: Some(2000),
    ..WAITING_ROOM
};

/// The gateway's per-caller rate limit, far above what any run's users send: the bench
/// measures capacity and cost, not the limiter's policy (in jwt mode the per-subject limiter
/// still runs: part of what jwt costs).
pub(super) const RATE_LIMIT_UNREACHABLE: &str = "1000000";

/// What tracing adds, on the queue pair and on holds, the three settings in turn and the turn
/// twice over (run-to-run noise on this machine is of the size of the effect): the setting, its
/// queue-pair run, its holds run. Each turn is paced at the same rate (`TRACED_*_RATE`), below
/// what any setting answers flat out: a request's CPU falls as the rate rises (more requests
/// share each wake-up), so turns run flat out at different rates were not comparable.
pub(super) const TRACING_RUNS: [(Tracing, &str, &str); 6] = [
    (Tracing::Off, "tracing-off-1", "holds-tracing-off-1"),
    (
        Tracing::Discarded(0.01),
        "tracing-1pct-1",
        "holds-tracing-1pct-1",
    ),
    (
        Tracing::Discarded(1.0),
        "tracing-100pct-1",
        "holds-tracing-100pct-1",
    ),
    (Tracing::Off, "tracing-off-2", "holds-tracing-off-2"),
    (
        Tracing::Discarded(0.01),
        "tracing-1pct-2",
        "holds-tracing-1pct-2",
    ),
    (
        Tracing::Discarded(1.0),
        "tracing-100pct-2",
        "holds-tracing-100pct-2",
    ),
];

/// What tracing adds counted in instructions: every service under callgrind, one request at a
/// time (so no request shares another's wake-up), each setting once (the count does not move
/// with the machine's load): the setting, its queue-pair run, its holds run.
pub(super) const COUNTED_RUNS: [(Tracing, &str, &str); 3] = [
    (Tracing::Off, "instructions-off", "holds-instructions-off"),
    (
        Tracing::Discarded(0.01),
        "instructions-1pct",
        "holds-instructions-1pct",
    ),
    (
        Tracing::Discarded(1.0),
        "instructions-100pct",
        "holds-instructions-100pct",
    ),
];

/// The rate (req/s) each tracing turn drives issue-token and check-queue at, over 64 connections
/// (flat out they run at 9,000–13,000 on this box).
pub(super) const TRACED_QUEUE_PAIR_RATE: u32 = 6000;
/// The rate (holds/s) each tracing turn's holds run at, over 32 users (flat out 2,400–3,000).
pub(super) const TRACED_HOLDS_RATE: u32 = 1500;

/// The standard set: the original report's experiments, then the limits they are judged by.
pub(super) fn plans(quick: bool) -> Vec<Plan> {
    let pick = |full: &str, short: &str| args(if quick { short } else { full });
    let holds = "holds --users 32 --options 100 --seats 1000";
    let mut plans = vec![
        Plan {
            name: "limits",
            system: None,
            args: pick("limits --seconds 10", "limits --seconds 3"),
        },
        Plan {
            name: "queue-spike-10k",
            system: Some(WAITING_ROOM),
            args: pick(
                "queue-spike --rate 1000 --users 10000 --linger 30",
                "queue-spike --rate 500 --users 2000 --linger 5",
            ),
        },
        Plan {
            name: "queue-spike-50k",
            system: Some(WAITING_ROOM),
            args: pick(
                "queue-spike --rate 2000 --users 50000 --linger 30",
                "queue-spike --rate 1000 --users 5000 --linger 5",
            ),
        },
        Plan {
            name: "capacity",
            system: Some(WAITING_ROOM),
            args: pick(
                "capacity --start-rate 500 --step-rate 500 --step-seconds 5 --overload-seconds 60 --recovery-seconds 30",
                "capacity --start-rate 1000 --step-rate 1000 --step-seconds 2 --overload-seconds 10 --recovery-seconds 10",
            ),
        },
        Plan {
            name: "reserve-flow-7",
            system: Some(BOOKING),
            args: pick(
                "reserve-flow --rate 7 --seconds 60 --linger 30",
                "reserve-flow --rate 7 --seconds 5 --linger 10",
            ),
        },
        Plan {
            name: "reserve-flow-14",
            system: Some(BOOKING),
            args: pick(
                "reserve-flow --rate 14 --seconds 60 --linger 30",
                "reserve-flow --rate 14 --seconds 5 --linger 10",
            ),
        },
        Plan {
            name: "contention",
            system: Some(OPEN_DOORS),
            args: pick(
                "contention --users 2000 --rate 1000 --seats 20",
                "contention --users 300 --rate 300 --seats 10",
            ),
        },
        Plan {
            name: "holds-tracing-off",
            system: Some(HOLDS),
            args: pick(
                &format!("{holds} --seconds 20"),
                &format!("{holds} --seconds 3"),
            ),
        },
    ];
    // What one request of each kind costs every process as fast as the system answers (the
    // budgets; the holds-tracing-off run above is the hold's row of the same table).
    plans.push(Plan {
        name: "cost-tracing-off",
        system: Some(COST),
        args: pick(
            "cost --seconds 10 --warmup-seconds 2",
            "cost --seconds 2 --warmup-seconds 1",
        ),
    });
    // What tracing adds to a request, each run on a fresh system (one turn in --quick).
    let turns = if quick { 3 } else { TRACING_RUNS.len() };
    let queue_pair =
        format!("cost --kinds issue-token,check-queue --no-floors --rate {TRACED_QUEUE_PAIR_RATE}");
    for (tracing, cost_run, holds_run) in TRACING_RUNS.into_iter().take(turns) {
        plans.push(Plan {
            name: cost_run,
            system: Some(System { tracing, ..COST }),
            args: pick(
                &format!("{queue_pair} --seconds 8 --warmup-seconds 2"),
                &format!("{queue_pair} --seconds 2 --warmup-seconds 1"),
            ),
        });
        plans.push(Plan {
            name: holds_run,
            system: Some(System { tracing, ..HOLDS }),
            args: pick(
                &format!("{holds} --rate {TRACED_HOLDS_RATE} --seconds 12"),
                &format!("{holds} --rate {TRACED_HOLDS_RATE} --seconds 3"),
            ),
        });
    }
    // The same three settings counted in instructions (far slower under callgrind: one
    // connection or user at a low rate, a few hundred requests of each kind).
    for (tracing, cost_run, holds_run) in COUNTED_RUNS {
        let counted = |base: System| System {
            tracing,
            counted: true,
            ..base
        };
        plans.push(Plan {
            name: cost_run,
            system: Some(counted(COST)),
            args: pick(
                "cost --kinds issue-token,check-queue --no-floors --connections 1 --rate 40 --seconds 10 --warmup-seconds 3",
                "cost --kinds issue-token,check-queue --no-floors --connections 1 --rate 40 --seconds 3 --warmup-seconds 2",
            ),
        });
        plans.push(Plan {
            name: holds_run,
            system: Some(counted(HOLDS)),
            args: pick(
                "holds --users 1 --options 100 --seats 1000 --rate 25 --seconds 12",
                "holds --users 1 --options 100 --seats 1000 --rate 25 --seconds 3",
            ),
        });
    }
    // A scheduled opening: 20,000 fans in the pre-queue for 2,000 seats (concert 2, after
    // the demo concert).
    plans.push(Plan {
        name: presale::RUN,
        system: Some(System {
            presale_seats: Some(if quick { 200 } else { 2000 }),
            ..PRESALE
        }),
        args: pick(
            "presale --fans 20000 --late-fans 300 --prequeue-secs 30 --concert 2 --admission-rate 200 --active-cap 1000",
            "presale --fans 2000 --late-fans 100 --prequeue-secs 10 --concert 2 --admission-rate 200 --active-cap 300",
        ),
    });
    // The reservation flow while Redis and PostgreSQL stall, PostgreSQL restarts, a
    // reservation replica is killed and the queue restarts, with calm between them.
    plans.push(Plan {
        name: faults::RUN,
        system: Some(FAULTS),
        args: pick(
            "faults --rate 20 --stall-seconds 5 --warmup-seconds 10 --calm-seconds 20 --baseline-seconds 10 --linger 30",
            "faults --rate 10 --stall-seconds 2 --warmup-seconds 5 --calm-seconds 8 --baseline-seconds 5 --linger 10",
        ),
    });
    // What verifying bearer tokens costs: the same load with GATEWAY_AUTH=trusted, then =jwt,
    // each on a fresh system, back to back.
    let compared = [
        (
            WAITING_ROOM,
            ["issue-token-trusted", "issue-token-jwt"],
            pick(
                "issue-tokens --rate 1000 --seconds 20",
                "issue-tokens --rate 500 --seconds 3",
            ),
        ),
        (
            HOLDS,
            ["holds-auth-trusted", "holds-auth-jwt"],
            pick(
                &format!("{holds} --seconds 20"),
                &format!("{holds} --seconds 3"),
            ),
        ),
    ];
    for (base, names, args) in compared {
        for (auth, name) in [AuthMode::Trusted, AuthMode::Jwt].into_iter().zip(names) {
            plans.push(Plan {
                name,
                system: Some(System { auth, ..base }),
                args: args.clone(),
            });
        }
    }
    plans
}

/// The plan's arguments, with what it takes from runs before it: a `cost` run measures the
/// hold's statement at the rate the holds through the gateway ran (with tracing off).
pub(super) fn with_earlier_figures(
    plan: &Plan,
    results: &BTreeMap<&'static str, Value>,
) -> Vec<String> {
    let mut words = plan.args.clone();
    let holds_rate = results
        .get("holds-tracing-off")
        .and_then(|run| run.pointer("/results/holds_per_second"))
        .and_then(Value::as_f64);
    if plan.name == "cost-tracing-off"
        && let Some(rate) = holds_rate
    {
        words.extend(["--statement-rate".into(), format!("{rate:.0}")]);
    }
    words
}
