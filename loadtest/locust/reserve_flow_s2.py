"""Original scenario 1-2 (2): joined query + reserve, ported.

Every virtual user is a distinct person: it waits in the queue for a real token (issue-token,
then check-queue every 1-3 s until ACTIVE), reads "Get Concert Options" (every option of
concert 1 with its free-seat count, one call), then keeps doing, 1-3 s apart and 1:2 weighted:

- "Get Concert Options" again;
- "Reserve Seat" on the next seat in turn: seats 1..50 of option 1, then of option 2, ... of
  option 10, then around again. 303 See Other (held: the user keeps the hold, as in the
  original, and moves on) and 400 SEAT_TAKEN (someone else has it: move on) are both expected,
  and so is 409 SEAT_LIMIT_REACHED once the user holds its limit of seats for the concert
  (RESERVATION_MAX_SEATS_PER_USER, 4 by default): it keeps trying, as the original did.

Every user starts at option 1, seat 1, so they race each other seat by seat: this is the
contention scenario. Holds are never paid; they run out after the hold time (5 min by default).
If the token's admission runs out, the user queues again and carries on where it was.

Fixed vs the original: every user sent userId 1 and one hard-coded token, and 400/401/403/404
(and 500 for the options call) all counted as success. Now only 200, 303, SEAT_TAKEN and
SEAT_LIMIT_REACHED do.

CONCERT_ID (default 1), OPTION_IDS (default 1-10, e.g. "1-10" or "3,5,7") and SEATS_PER_OPTION
(default 50) in the environment match it to other seed data.
"""

import os

from locust import HttpUser, between, task

from _common import DEFAULT_HOST, WaitingRoom, body_of, code_of, tally, unexpected


def _option_ids(text):
    ids = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


CONCERT_ID = int(os.environ.get("CONCERT_ID", "1"))
CONCERT_OPTION_IDS = _option_ids(os.environ.get("OPTION_IDS", "1-10"))
MAX_SEATS = int(os.environ.get("SEATS_PER_OPTION", "50"))


class ConcertUser(WaitingRoom, HttpUser):
    host = DEFAULT_HOST
    wait_time = between(1, 3)

    def on_start(self):
        self.arrive()
        self.current_option_index = 0
        self.current_seat_id = 1

    def on_admitted(self):
        self.read_concert_options()  # the original's on_start

    @task(1)
    def get_concert_options(self):
        if self.admitted():
            self.read_concert_options()

    def read_concert_options(self):
        with self.client.get(
            f"/api/concert/concert/{CONCERT_ID}/available-concert-options",
            name="Get Concert Options",
            catch_response=True,
        ) as response:
            if response.status_code == 200 and isinstance(body_of(response), list):
                response.success()
            else:
                unexpected(response)

    @task(2)
    def reserve_seat(self):
        if not self.admitted():
            return
        with self.post_reserve(CONCERT_OPTION_IDS[self.current_option_index], self.current_seat_id) as response:
            if response.status_code == 303:
                held = body_of(response)
                if isinstance(held, dict) and held.get("status") == "HELD":
                    response.success()
                    tally.count("seats held")
                else:
                    response.failure("303 without a HELD reservation body")
                self.next_seat()
            elif response.status_code == 400 and code_of(response) == "SEAT_TAKEN":
                response.success()
                tally.count("SEAT_TAKEN")
                self.next_seat()
            elif response.status_code == 409 and code_of(response) == "SEAT_LIMIT_REACHED":
                response.success()
                tally.count("SEAT_LIMIT_REACHED")
                self.next_seat()
            elif self.token_gone(response):
                pass  # queue again, then retry this seat
            else:
                unexpected(response)
                self.next_seat()

    def next_seat(self):
        self.current_seat_id += 1
        if self.current_seat_id > MAX_SEATS:
            self.current_seat_id = 1
            self.current_option_index = (self.current_option_index + 1) % len(CONCERT_OPTION_IDS)
