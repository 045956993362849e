//! What the presale run saw, counted, and the checks held against it: the draw's order, nobody
//! overtaking the pre-queue, the rank correlation of arrival and place.

use super::*;

/// The fans' endings counted, and the instants that matter.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) joined: u64,
    pub(super) joined_prequeue: u64,
    pub(super) join_failures: u64,
    pub(super) joins_per_second: f64,
    pub(super) admitted: u64,
    pub(super) paid: u64,
    pub(super) no_seat: u64,
    pub(super) told_sold_out: u64,
    pub(super) still_waiting: u64,
    pub(super) failed: u64,
    pub(super) lost: u64,
    /// The shortest and longest silence after which a fan was told its place was gone.
    pub(super) lost_after: Option<(Duration, Duration)>,
    pub(super) seat_taken: u64,
    pub(super) last_admitted: Option<Instant>,
    /// When the last payment was answered.
    pub(super) last_paid: Option<Instant>,
    /// Pre-queue fans whose place in the draw was seen before anyone was admitted.
    pub(super) exact_positions: u64,
    pub(super) arrival_correlation: Option<f64>,
    pub(super) released: Option<Instant>,
}

impl Outcome {
    pub(super) fn of(fans: &[Fan], released: Option<Instant>, seat_taken: u64) -> Self {
        let mut outcome = Outcome {
            seat_taken,
            released,
            ..Outcome::default()
        };
        let mut joins: Vec<Instant> = Vec::new();
        let mut paid_at: Vec<Instant> = Vec::new();
        for fan in fans {
            match fan.joined_at {
                Some(at) => {
                    outcome.joined += 1;
                    if !fan.late {
                        joins.push(at);
                    }
                    if fan.in_prequeue() {
                        outcome.joined_prequeue += 1;
                    }
                }
                None => outcome.join_failures += 1,
            }
            if let Some(at) = fan.admitted_at {
                outcome.admitted += 1;
                outcome.last_admitted = outcome.last_admitted.max(Some(at));
            }
            match fan.ending {
                Ending::Paid(at) => paid_at.push(at),
                Ending::NoSeat => outcome.no_seat += 1,
                Ending::SoldOut => outcome.told_sold_out += 1,
                Ending::Going if fan.admitted_at.is_none() => outcome.still_waiting += 1,
                Ending::Going => {}
                Ending::Lost => {
                    outcome.lost += 1;
                    if let Some(after) = fan.lost_after {
                        let (low, high) = outcome.lost_after.unwrap_or((after, after));
                        outcome.lost_after = Some((low.min(after), high.max(after)));
                    }
                }
                Ending::Failed => outcome.failed += 1,
            }
        }
        outcome.paid = paid_at.len() as u64;
        outcome.last_paid = paid_at.iter().max().copied();
        if let (Some(first), Some(last)) = (joins.iter().min(), joins.iter().max()) {
            let span = last.saturating_duration_since(*first).as_secs_f64();
            outcome.joins_per_second = joins.len() as f64 / span.max(f64::EPSILON);
        }
        let exact = exact_draw(fans, released);
        outcome.exact_positions = exact.len() as u64;
        outcome.arrival_correlation = (exact.len() >= 100).then(|| {
            let (arrival, position): (Vec<f64>, Vec<f64>) = exact
                .iter()
                .map(|(index, fan)| (*index as f64, fan.position as f64))
                .unzip();
            rank_correlation(&arrival, &position)
        });
        outcome
    }

    pub(super) fn checks(
        &self,
        fans: &[Fan],
        before: &RoomState,
        after: &RoomState,
        early: Option<bool>,
        (opens_instant, opens_ms): (Instant, i64),
    ) -> Vec<(&'static str, Check)> {
        let mut checks = Vec::new();
        checks.push((
            "refused_before_prequeue",
            match early {
                Some(refused) => check(
                    refused,
                    if refused {
                        "joining before prequeueOpensAt answered 409 ROOM_NOT_OPEN".into()
                    } else {
                        "joining before prequeueOpensAt was not refused with 409 ROOM_NOT_OPEN"
                            .into()
                    },
                ),
                None => check(
                    true,
                    "not told: the probe's answer came after the pre-queue opened".into(),
                ),
            },
        ));

        // Joins answered before the opening must enter the pre-queue, and joins sent after it
        // must not; a join in flight across the opening may be either.
        let opens_at = rfc3339(opens_ms);
        let margin = Duration::from_millis(100);
        let (mut before_opening, mut after_opening, mut wrong) = (0, 0, 0);
        for fan in fans {
            let (Some(sent), Some(answered)) = (fan.join_sent, fan.joined_at) else {
                continue;
            };
            if answered + margin < opens_instant {
                before_opening += 1;
                let told = fan.in_prequeue()
                    && fan.join_opens_at.as_deref().map(same_instant(&opens_at)) == Some(true);
                wrong += u64::from(!told);
            } else if sent > opens_instant + margin {
                after_opening += 1;
                wrong += u64::from(fan.in_prequeue());
            }
        }
        checks.push((
            "prequeue_answered",
            check(
                wrong == 0,
                format!(
                    "{before_opening} joins answered before the opening, {after_opening} sent after it: {wrong} not PREQUEUE with opensAt {opens_at} before, or PREQUEUE after"
                ),
            ),
        ));

        let twice = fans.iter().filter(|fan| fan.admissions > 1).count();
        let room_admitted = after.admitted_total.saturating_sub(before.admitted_total);
        checks.push((
            "admitted_once",
            check(
                twice == 0 && room_admitted == self.admitted,
                format!(
                    "{} fans saw ACTIVE, the room counts {room_admitted} admissions; {twice} fans admitted twice",
                    self.admitted
                ),
            ),
        ));

        let order = draw_order(fans, self.released);
        checks.push((
            "draw_order",
            check(
                order.duplicates == 0 && order.exact_violations == 0 && order.proven_violations == 0,
                format!(
                    "{} pre-queue fans' places seen before admission began ({} repeated); {} of them not admitted though ahead of an admitted one; {} admitted fans behind one never admitted, by later positions; the admitted are {}",
                    order.exact,
                    order.duplicates,
                    order.exact_violations,
                    order.proven_violations,
                    if order.first_k { "exactly the first places of the draw" } else { "not shown to be the first places (not every place was seen)" },
                ),
            ),
        ));

        let overtaking = overtaking(fans);
        checks.push((
            "no_overtaking",
            check(
                overtaking.ahead == 0 && overtaking.admitted_before_prequeue == 0,
                format!(
                    "{} fans joined after the opening; {} of them placed ahead of pre-queue fans still in line; {} admitted while pre-queue fans never were",
                    overtaking.placed, overtaking.ahead, overtaking.admitted_before_prequeue
                ),
            ),
        ));

        let total = before.seats.total();
        checks.push((
            "sold_out",
            check(
                after.seats.sold == total && after.seats.held == 0 && after.seats.free == 0,
                format!(
                    "{total} seats: {} sold, {} held, {} free at the end (room); {} paid by this run's fans",
                    after.seats.sold, after.seats.held, after.seats.free, self.paid
                ),
            ),
        ));

        let not_admitted: Vec<&Fan> = fans
            .iter()
            .filter(|fan| fan.admitted_at.is_none())
            .collect();
        let told = not_admitted
            .iter()
            .filter(|fan| {
                fan.ending == Ending::SoldOut
                    && fan.last_status == Some(Status::SoldOut)
                    && fan.last_seats_may_return == Some(false)
            })
            .count();
        checks.push((
            "not_admitted_told_sold_out",
            check(
                told == not_admitted.len(),
                format!(
                    "{told} of {} fans never admitted ended told SOLD_OUT with seatsMayReturn false ({} still waiting, {} lost their place, {} failed)",
                    not_admitted.len(),
                    self.still_waiting,
                    self.lost,
                    self.failed
                ),
            ),
        ));

        // |ρ| of independent orders is about 1/√n: 4/√n (at least 0.05) is not chance.
        checks.push((
            "draw_not_arrival_order",
            match self.arrival_correlation {
                Some(rho) => {
                    let bound = (4.0 / (self.exact_positions as f64).sqrt()).max(0.05);
                    check(
                        rho.abs() <= bound,
                        format!(
                            "rank correlation of arrival and place in the draw {rho:+.3} over {} fans (|ρ| ≤ {bound:.3})",
                            self.exact_positions
                        ),
                    )
                }
                None => check(true, "not measured: fewer than 100 places seen before admission".into()),
            },
        ));
        checks
    }
}

/// Whether an RFC 3339 time is the same second as `expected` (the gateway may write it with
/// fractions or another offset notation).
pub(super) fn same_instant(expected: &str) -> impl Fn(&str) -> bool + '_ {
    move |given: &str| given.get(..19) == expected.get(..19)
}

/// Pre-queue fans (by fan index) whose first place after the opening was answered before the
/// doors opened: nobody had been admitted, so it is their place in the draw.
pub(super) fn exact_draw(fans: &[Fan], released: Option<Instant>) -> Vec<(usize, Seen)> {
    let Some(released) = released else {
        return Vec::new();
    };
    fans.iter()
        .enumerate()
        .filter(|(_, fan)| fan.in_prequeue())
        .filter_map(|(index, fan)| Some((index, fan.drawn?)))
        .filter(|(_, seen)| seen.end <= released)
        .collect()
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DrawOrder {
    exact: u64,
    duplicates: u64,
    /// Exact places: fans never admitted (still in line) ahead of the last admitted place.
    exact_violations: u64,
    /// Admitted fans that later positions prove were behind a fan never admitted.
    proven_violations: u64,
    /// Every pre-queue fan's place was seen exactly, and the admitted are places 1..=K.
    first_k: bool,
}

pub(super) fn draw_order(fans: &[Fan], released: Option<Instant>) -> DrawOrder {
    let mut order = DrawOrder::default();
    // Fans who left on their own (errors) are not judged: they may have been dropped.
    let stayed = |fan: &Fan| !fan.left();
    let exact: Vec<(Seen, bool)> = exact_draw(fans, released)
        .into_iter()
        .filter(|(index, _)| stayed(&fans[*index]))
        .map(|(index, seen)| (seen, fans[index].admitted_at.is_some()))
        .collect();
    order.exact = exact.len() as u64;
    let mut positions: Vec<u64> = exact.iter().map(|(seen, _)| seen.position).collect();
    positions.sort_unstable();
    order.duplicates = positions.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    let last_admitted = exact
        .iter()
        .filter(|(_, admitted)| *admitted)
        .map(|(seen, _)| seen.position)
        .max()
        .unwrap_or(0);
    order.exact_violations = exact
        .iter()
        .filter(|(seen, admitted)| !admitted && seen.position < last_admitted)
        .count() as u64;
    let pre_in_line = fans
        .iter()
        .filter(|fan| fan.in_prequeue() && stayed(fan))
        .count();
    let admitted = exact.iter().filter(|(_, admitted)| *admitted).count() as u64;
    order.first_k = exact.len() == pre_in_line
        && order.duplicates == 0
        && positions.iter().copied().eq(1..=exact.len() as u64)
        && exact
            .iter()
            .all(|(seen, was)| *was == (seen.position <= admitted));

    // Positions only shrink while a fan waits (the pre-queue is ahead of later joiners). So X
    // answered at or before Y's place, earlier than Y asked, is ahead of Y: an admitted Y
    // behind an X never admitted is admission out of order.
    let mut never: Vec<(Instant, u64)> = Vec::new();
    let mut admitted_seen: Vec<(Instant, u64)> = Vec::new();
    for fan in fans.iter().filter(|fan| fan.in_prequeue() && stayed(fan)) {
        let Some(seen) = fan.drawn else { continue };
        if fan.admitted_at.is_some() {
            admitted_seen.push((seen.start, seen.position));
        } else {
            never.push((seen.end, seen.position));
        }
    }
    order.proven_violations = behind_a_never_admitted(&mut never, &mut admitted_seen);
    order
}

/// Admitted (asked at, position) behind a never-admitted (answered at, position): answered no
/// later than the admitted one asked, at a position no further back.
pub(super) fn behind_a_never_admitted(
    never: &mut [(Instant, u64)],
    admitted: &mut [(Instant, u64)],
) -> u64 {
    never.sort_unstable();
    admitted.sort_unstable();
    let mut lowest = u64::MAX;
    let mut next = 0;
    let mut violations = 0;
    for (asked, position) in admitted.iter() {
        while next < never.len() && never[next].0 <= *asked {
            lowest = lowest.min(never[next].1);
            next += 1;
        }
        if lowest <= *position {
            violations += 1;
        }
    }
    violations
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Overtaking {
    /// Fans who joined after the opening with a place.
    placed: u64,
    /// Of them, placed not behind every pre-queue fan still in line.
    ahead: u64,
    /// Of them, admitted although a pre-queue fan (still in line) never was.
    admitted_before_prequeue: u64,
}

/// A fan joined at position p after the opening (late, or held up past it). Every pre-queue
/// fan answered with a place in a call sent after that join was answered was in line at the
/// join (nobody comes back), so ahead of it: p must be past all of them.
pub(super) fn overtaking(fans: &[Fan]) -> Overtaking {
    let mut still_there: Vec<Instant> = fans
        .iter()
        .filter(|fan| fan.in_prequeue())
        .filter_map(|fan| fan.placed_last)
        .collect();
    still_there.sort_unstable();
    let mut result = Overtaking::default();
    for fan in fans {
        let Some(joined) = fan.join_position else {
            continue;
        };
        result.placed += 1;
        let later = still_there.len() - still_there.partition_point(|at| *at < joined.end);
        if joined.position <= later as u64 {
            result.ahead += 1;
        }
    }
    let prequeue_never_admitted = fans
        .iter()
        .any(|fan| fan.in_prequeue() && !fan.left() && fan.admitted_at.is_none());
    if prequeue_never_admitted {
        result.admitted_before_prequeue = fans
            .iter()
            .filter(|fan| fan.join_position.is_some() && fan.admitted_at.is_some())
            .count() as u64;
    }
    result
}

/// Spearman's ρ: the correlation of the two lists' ranks.
pub(super) fn rank_correlation(xs: &[f64], ys: &[f64]) -> f64 {
    pub(super) fn ranks(values: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
        let mut ranks = vec![0.0; values.len()];
        for (rank, index) in order.into_iter().enumerate() {
            ranks[index] = rank as f64;
        }
        ranks
    }
    let (rx, ry) = (ranks(xs), ranks(ys));
    let n = rx.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = (n - 1.0) / 2.0;
    let (mut cov, mut vx, mut vy) = (0.0, 0.0, 0.0);
    for (x, y) in rx.iter().zip(&ry) {
        cov += (x - mean) * (y - mean);
        vx += (x - mean).powi(2);
        vy += (y - mean).powi(2);
    }
    if vx == 0.0 || vy == 0.0 {
        0.0
    } else {
        cov / (vx * vy).sqrt()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    #[test]
    fn rank_correlation_tells_order_from_shuffle() {
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        assert!((rank_correlation(&xs, &xs) - 1.0).abs() < 1e-9);
        let reversed: Vec<f64> = xs.iter().rev().copied().collect();
        assert!((rank_correlation(&xs, &reversed) + 1.0).abs() < 1e-9);
        let mut shuffled = xs.clone();
        fastrand::seed(7);
        fastrand::shuffle(&mut shuffled);
        assert!(rank_correlation(&xs, &shuffled).abs() < 0.15);
    }

    fn fan(late: bool) -> Fan {
        Fan {
            late,
            join_status: Some(if late {
                Status::Waiting
            } else {
                Status::Prequeue
            }),
            joined_at: Some(Instant::now()),
            ending: Ending::SoldOut,
            ..Fan::default()
        }
    }

    fn seen(at: Instant, position: u64) -> Option<Seen> {
        Some(Seen {
            start: at,
            end: at + Duration::from_millis(1),
            position,
        })
    }

    #[test]
    fn places_seen_before_the_doors_open_must_put_the_admitted_first() {
        let t0 = Instant::now();
        let released = t0 + Duration::from_secs(1);
        // Places 1..=4; 1 and 2 admitted.
        let mut fans: Vec<Fan> = (1..=4)
            .map(|position| {
                let mut f = fan(false);
                f.drawn = seen(t0, position);
                if position <= 2 {
                    f.admitted_at = Some(released + Duration::from_secs(1));
                    f.ending = Ending::Paid(released);
                }
                f
            })
            .collect();
        let order = draw_order(&fans, Some(released));
        assert_eq!(
            (
                order.exact,
                order.duplicates,
                order.exact_violations,
                order.proven_violations
            ),
            (4, 0, 0, 0)
        );
        assert!(order.first_k);
        // Place 3 admitted instead of 2: out of draw order.
        fans[1].admitted_at = None;
        fans[2].admitted_at = Some(released);
        let order = draw_order(&fans, Some(released));
        assert_eq!(order.exact_violations, 1);
        assert!(!order.first_k);
        // A fan who left with an error is not judged.
        fans[1].ending = Ending::Failed;
        assert_eq!(draw_order(&fans, Some(released)).exact_violations, 0);
    }

    #[test]
    fn later_positions_prove_order_only_where_nothing_else_explains_them() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // X never admitted, at 5 seen at 0 ms; Y admitted, at 7 seen at 100 ms: X is ahead.
        let mut never = vec![(at(1), 5)];
        let mut admitted = vec![(at(100), 7)];
        assert_eq!(behind_a_never_admitted(&mut never, &mut admitted), 1);
        // Y at 3 seen later: the front may have moved two places, it proves nothing.
        let mut admitted = vec![(at(100), 3)];
        assert_eq!(behind_a_never_admitted(&mut never, &mut admitted), 0);
        // Y at 7 seen before X answered: nothing proven either.
        let mut never = vec![(at(200), 5)];
        let mut admitted = vec![(at(100), 7)];
        assert_eq!(behind_a_never_admitted(&mut never, &mut admitted), 0);
    }

    #[test]
    fn a_late_fan_placed_ahead_of_pre_queue_fans_still_in_line_overtook() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut fans: Vec<Fan> = (0..3)
            .map(|_| {
                let mut f = fan(false);
                f.placed_last = Some(at(500));
                f
            })
            .collect();
        let mut late = fan(true);
        late.join_position = seen(at(100), 4);
        fans.push(late);
        assert_eq!(
            overtaking(&fans),
            Overtaking {
                placed: 1,
                ahead: 0,
                admitted_before_prequeue: 0
            }
        );
        fans[3].join_position = seen(at(100), 3);
        assert_eq!(overtaking(&fans).ahead, 1);
        // Pre-queue fans last seen before the late join prove nothing about it.
        for f in &mut fans[..3] {
            f.placed_last = Some(at(50));
        }
        assert_eq!(overtaking(&fans).ahead, 0);
        // Admitted while pre-queue fans never were.
        fans[3].admitted_at = Some(at(900));
        assert_eq!(overtaking(&fans).admitted_before_prequeue, 1);
    }

    #[test]
    fn a_fan_whose_join_was_held_up_past_the_opening_is_judged_as_a_late_joiner() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut fans: Vec<Fan> = (1..=2)
            .map(|position| {
                let mut f = fan(false);
                f.drawn = seen(at(10), position);
                f.placed_last = Some(at(500));
                f
            })
            .collect();
        // Of the pre-queue window, but its join was answered after the opening, at place 3.
        let mut held_up = fan(false);
        held_up.join_status = Some(Status::Waiting);
        held_up.join_position = seen(at(100), 3);
        held_up.drawn = None;
        fans.push(held_up);
        let order = draw_order(&fans, Some(at(1000)));
        assert_eq!((order.exact, order.exact_violations), (2, 0));
        assert_eq!(
            overtaking(&fans),
            Overtaking {
                placed: 1,
                ahead: 0,
                admitted_before_prequeue: 0
            }
        );
        // Placed ahead of the two still in line: it overtook them.
        fans[2].join_position = seen(at(100), 2);
        assert_eq!(overtaking(&fans).ahead, 1);
    }
}
