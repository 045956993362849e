"""Original scenario 1-2 (1): individual calls, ported.

Every virtual user is a distinct person: it waits in the queue for a real token (issue-token,
then check-queue every 1-3 s until ACTIVE), then, one step per task (1-3 s think time between):

1. "Get Concert Options" (available dates of concert 1) -> the first option that still has free
   seats -> "Get Available Seats" of that option -> "Reserve Seat" on a random free seat
   (303 See Other with the reservation as the body). A seat someone else took in between
   (400 SEAT_TAKEN) is expected: the user browses again on its next task.
2. "Get Balance" -> "Charge Wallet" with what the price still needs -> "Pay".
   Paying releases the token; the user is done and stays idle (with --rejoin, a new user takes
   its place). When no option has a free seat left ("sold out"), the user is done too.

The original ran users arriving at 7/s (and 14/s). Fixed vs the original: every user sent
userId 1 and one hard-coded token (so against a real queue everything was a 401 that it counted
as success), any status counted as success, everyone fought for seat[0], and nobody paid.

CONCERT_ID (environment, default 1) picks the concert.
"""

import os
import random
import time
import uuid

from locust import HttpUser, between, task

from _common import (
    CLOCK_SLACK_SECS,
    DEFAULT_HOST,
    WaitingRoom,
    body_of,
    code_of,
    parse_instant,
    tally,
    unexpected,
)

CONCERT_ID = int(os.environ.get("CONCERT_ID", "1"))


class ConcertUser(WaitingRoom, HttpUser):
    host = DEFAULT_HOST
    wait_time = between(1, 3)

    def on_start(self):
        self.arrive()

    def start_as_new_user(self):
        super().start_as_new_user()
        self.reservation = None  # the held reservation, until paid

    @task
    def step(self):
        if not self.admitted():
            return
        if self.reservation is None:
            self.browse_and_reserve()
        else:
            self.pay()

    # --- 1. browse and hold --------------------------------------------------------------

    def browse_and_reserve(self):
        option_id = self.get_concert_options()
        if option_id is None:
            return
        seat_id = self.get_available_seats(option_id)
        if seat_id is None:
            return
        self.reserve_seat(option_id, seat_id)

    def get_concert_options(self):
        with self.client.get(
            f"/api/concert/{CONCERT_ID}/available-dates",
            name="Get Concert Options",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                unexpected(response)
                return None
            options = body_of(response)
            if not isinstance(options, list):
                response.failure("available-dates is not a list")
                return None
            if not options:
                response.success()
                tally.count("users who found the concert sold out (done)")
                self.done(rejoin=False)  # newcomers would find it sold out too
                return None
                return None
            option_id = options[0].get("id") if isinstance(options[0], dict) else None
            if not isinstance(option_id, int):
                response.failure("option without an id")
                return None
            response.success()
            return option_id

    def get_available_seats(self, option_id):
        with self.client.get(
            f"/api/concert/{option_id}/available-seats",
            name="Get Available Seats",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                unexpected(response)
                return None
            seats = body_of(response)
            if not isinstance(seats, list):
                response.failure("available-seats is not a list")
                return None
            ids = [seat.get("id") for seat in seats if isinstance(seat, dict)]
            ids = [seat_id for seat_id in ids if isinstance(seat_id, int)]
            response.success()
            if not ids:
                # The option filled up since available-dates listed it: browse again.
                tally.count("options that filled up between two reads")
                return None
            return random.choice(ids)

    def reserve_seat(self, option_id, seat_id):
        with self.post_reserve(option_id, seat_id) as response:
            if response.status_code == 303:
                held = body_of(response)
                if (
                    isinstance(held, dict)
                    and held.get("status") == "HELD"
                    and isinstance(held.get("reservationId"), int)
                    and isinstance(held.get("price"), int)
                ):
                    response.success()
                    self.reservation = held
                    tally.count("seats held")
                else:
                    response.failure("303 without a HELD reservation body")
            elif response.status_code == 400 and code_of(response) == "SEAT_TAKEN":
                response.success()
                tally.count("SEAT_TAKEN (browsed again)")
            elif self.token_gone(response):
                pass
            else:
                unexpected(response)

    # --- 2. pay --------------------------------------------------------------------------

    def pay(self):
        price = self.reservation["price"]
        balance = self.get_balance()
        if balance is None:
            return
        if balance < price and not self.charge(price - balance):
            return
        with self.client.post(
            "/api/payments",
            json={
                "reservationId": self.reservation["reservationId"],
                "userId": self.user_id,
                "token": self.token,
            },
            name="Pay",
            headers={"Idempotency-Key": str(uuid.uuid4())},
            catch_response=True,
        ) as response:
            code = code_of(response)
            if response.status_code == 200:
                paid = body_of(response)
                if isinstance(paid, dict) and paid.get("status") == "CONFIRMED":
                    response.success()
                    tally.count("seats paid")
                    self.reservation = None
                    self.done()  # the token is released: this user is finished
                else:
                    response.failure("200 without a CONFIRMED payment")
            elif response.status_code == 409 and code == "HOLD_EXPIRED" and self.hold_ran_out():
                response.success()
                tally.count("holds that ran out before paying (browsed again)")
                self.reservation = None
            elif self.token_gone(response):
                pass  # the hold stays; pay again once re-admitted
            else:
                unexpected(response)

    def hold_ran_out(self):
        expires_at = parse_instant(self.reservation.get("expiresAt"))
        return expires_at is not None and time.time() >= expires_at - CLOCK_SLACK_SECS

    def get_balance(self):
        with self.client.get(
            f"/api/users/{self.user_id}/balance",
            name="Get Balance",
            catch_response=True,
        ) as response:
            body = body_of(response)
            if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("balance"), int):
                response.success()
                return body["balance"]
            unexpected(response)
            return None

    def charge(self, amount):
        with self.client.post(
            f"/api/users/{self.user_id}/balance/charge",
            json={"amount": amount},
            name="Charge Wallet",
            headers={"Idempotency-Key": str(uuid.uuid4())},
            catch_response=True,
        ) as response:
            body = body_of(response)
            if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("balance"), int):
                response.success()
                return True
            unexpected(response)
            return False
