"""What the three ported scenarios share: distinct user ids, the waiting room, outcome rules.

Locust skips files whose names start with "_" when -f names a directory, so this module is
never taken for a scenario; the scenarios import it (Locust puts their folder on sys.path).

Outcome rules, the same in every scenario: a response counts as a success only when it is what
the contract (docs/api.md) says should happen at that point — including the expected
refusals (SEAT_TAKEN, sold out, a token that expired after its activeUntil). Anything else is a
failure, and a 5xx or a connection error is always a failure.
"""

import itertools
import logging
import os
import random
import secrets
import statistics
import time
import uuid
from datetime import datetime

import gevent
from locust import events
from locust.runners import MasterRunner

logger = logging.getLogger("ticketing")

DEFAULT_HOST = "http://127.0.0.1:8080"

# Request names of the waiting phase, apart from the scenario's own requests.
ISSUE_TOKEN = "Queue: issue-token"
CHECK_QUEUE = "Queue: check-queue"

# Ids must be integers in 1..2^53-1 (DESIGN.md). Each process draws a random base per run, so
# reruns do not collide with earlier runs' users (the queue keeps one live token per user), and
# counts up from it. The pid check makes every forked worker (--processes) draw its own base.
_ID_LIMIT = 2**53 - 1
_ID_SPAN = 2**32
_ids = None


def next_user_id():
    global _ids
    pid = os.getpid()
    if _ids is None or _ids[0] != pid:
        _ids = (pid, itertools.count(1 + secrets.randbelow(_ID_LIMIT - _ID_SPAN)))
    return next(_ids[1])


def body_of(response):
    """The JSON body, or None when there is none or it is not JSON."""
    try:
        return response.json()
    except Exception:  # noqa: BLE001 - any parse problem means "no usable body"
        return None


def code_of(response):
    body = body_of(response)
    return body.get("code") if isinstance(body, dict) else None


def unexpected(response, what=""):
    """Marks the response as a failure, grouped by status and error code."""
    code = code_of(response)
    detail = f" {code}" if code else ""
    prefix = f"{what}: " if what else ""
    response.failure(f"{prefix}unexpected {response.status_code}{detail}")


def parse_instant(text):
    """Seconds since the epoch of an RFC 3339 instant ("2026-11-25T11:19:18.961Z"), or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# Slack for "the deadline has passed" between this process's clock and Redis/PostgreSQL's.
CLOCK_SLACK_SECS = 1.0


class Tally:
    """Per-process counts printed when the test stops (the stats table has only requests)."""

    def __init__(self):
        self.waits = []
        self.counts = {}

    def admitted(self, waited_secs):
        self.waits.append(waited_secs)

    def count(self, what, n=1):
        self.counts[what] = self.counts.get(what, 0) + n

    def summary(self):
        lines = []
        if self.waits:
            waits = sorted(self.waits)
            p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))]
            lines.append(
                f"admitted {len(waits)} users; wait in the queue until ACTIVE: "
                f"p50 {statistics.median(waits):.1f} s, p95 {p95:.1f} s, max {waits[-1]:.1f} s"
            )
        else:
            lines.append("admitted 0 users")
        for what, n in sorted(self.counts.items()):
            lines.append(f"{what}: {n}")
        return lines


tally = Tally()


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument(
        "--rejoin",
        action="store_true",
        default=False,
        help="ticketing: when a virtual user is done (queue_spike: admitted; reserve_flow_s1: paid), "
        "a new user with a new userId takes its place instead of leaving",
    )


@events.test_stop.add_listener
def _summary(environment, **_kwargs):
    if isinstance(environment.runner, MasterRunner):
        return  # each worker prints its own
    for line in tally.summary():
        logger.info("ticketing: %s", line)


class WaitingRoom:
    """Mixin for a Locust user: a fresh userId and a real token through the waiting room.

    Call `admitted()` at the top of every task: while the user is not ACTIVE it makes one queue
    request (issue-token, then check-queue on later calls: the scenario's wait_time of 1-3 s is
    the polling interval) and returns False; once ACTIVE it returns True. A user that is done
    (see `done()`) gets False and makes no request.
    """

    def arrive(self):
        """on_start: a random 0-1 s pause, then a new user.

        Locust starts each second's r new users at the same instant; spread over the second
        they arrive at r/s as intended, and the first request times the server (~1-2 ms for
        issue-token here) rather than Locust's own burst (~10-20 ms at -r 50 on 2 cores).
        """
        gevent.sleep(random.random())
        self.start_as_new_user()

    def start_as_new_user(self):
        self.user_id = next_user_id()
        self.finished = False
        self.forget_token()

    def forget_token(self):
        self.token = None
        self.poll_after = 0
        self.queue_status = None
        self.active_until = None
        self.joined_at = None

    def admitted(self):
        if self.finished:
            return False
        if self.queue_status == "ACTIVE":
            if time.time() < self.active_until:
                return True
            # Our admission is over: back into the line. (Not earlier than activeUntil: until
            # then issue-token would hand back the same, still active, token.)
            tally.count("tokens expired after activeUntil (re-queued)")
            self.forget_token()
        if self.token is None:
            self._issue_token()
        else:
            # The queue asks the back of a long line to poll less often (pollAfterSeconds);
            # wait_time already paused 1-3 s, so sleep only the rest.
            if self.poll_after > 3:
                gevent.sleep(self.poll_after - 3)
            self._check_queue()
        if self.queue_status == "ACTIVE":
            tally.admitted(time.monotonic() - self.joined_at)
            self.on_admitted()
        return False

    def on_admitted(self):
        """Hook: runs once right after the user becomes ACTIVE."""

    def _take_status(self, response, body):
        """Reads a TokenView; False (and a failure) when it is not one."""
        status = body.get("status") if isinstance(body, dict) else None
        token = body.get("token") if isinstance(body, dict) else None
        if status not in ("WAITING", "ACTIVE") or not isinstance(token, str) or not token:
            response.failure("not a token view")
            return False
        if self.token is not None and token != self.token:
            response.failure("check-queue answered for another token")
            return False
        self.token = token
        self.queue_status = status
        poll_after = body.get("pollAfterSeconds")
        self.poll_after = poll_after if isinstance(poll_after, int) and status == "WAITING" else 0
        if status == "ACTIVE":
            self.active_until = parse_instant(body.get("activeUntil"))
            if self.active_until is None:
                response.failure("ACTIVE without a valid activeUntil")
                return False
        return True

    def _issue_token(self):
        self.joined_at = time.monotonic()
        with self.client.post(
            "/queue/issue-token",
            json={"userId": self.user_id},
            name=ISSUE_TOKEN,
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                if self._take_status(response, body_of(response)):
                    response.success()
                else:
                    self.forget_token()
            else:
                unexpected(response)
                self.forget_token()

    def _check_queue(self):
        with self.client.get(
            f"/queue/check-queue?token={self.token}",
            name=CHECK_QUEUE,
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                if self._take_status(response, body_of(response)):
                    response.success()
                else:
                    self.forget_token()
            elif self.token_gone(response):
                pass  # token_gone judged it and sent us back to issue-token
            else:
                unexpected(response)

    def post_reserve(self, option_id, seat_id):
        """POST /api/reserve as a `with` block (catch_response), with an Idempotency-Key."""
        return self.client.post(
            "/api/reserve",
            json={
                "token": self.token,
                "concertOptionId": option_id,
                "seatId": seat_id,
                "userId": self.user_id,
            },
            name="Reserve Seat",
            headers={"Idempotency-Key": str(uuid.uuid4())},
            allow_redirects=False,  # the 303 has no Location: it is the answer itself
            catch_response=True,
        )

    def token_gone(self, response):
        """Handles 401/404 "token expired / not found" on any request made with the token.

        Expected (success) only when our admission had run out (activeUntil passed); a waiter
        that kept polling, or an admitted user within activeUntil, losing its token is a failure.
        Either way the user goes back to issue-token (with the same userId). Returns False when
        the response is something else, leaving it to the caller.
        """
        if response.status_code not in (401, 404):
            return False
        code = code_of(response)
        if code not in ("TOKEN_EXPIRED", "TOKEN_NOT_FOUND"):
            return False
        if self.active_until is not None and time.time() >= self.active_until - CLOCK_SLACK_SECS:
            response.success()
            tally.count("tokens expired after activeUntil (re-queued)")
        else:
            response.failure(f"token lost while it should be valid: {response.status_code} {code}")
        self.forget_token()
        return True

    def done(self, rejoin=True):
        """The user has finished: it stays idle (no more requests) until the run ends, so -u N
        is exactly N people; with --rejoin (and `rejoin`), a new user takes its place instead.

        (Not StopUser: Locust replaces users that stop while it is still ramping up.)
        """
        options = self.environment.parsed_options
        if rejoin and options is not None and getattr(options, "rejoin", False):
            self.start_as_new_user()
        else:
            self.finished = True
