"""Original scenario 1-1 (queue spike), ported.

Every virtual user is a distinct person (its own userId): it issues a queue token, then polls
check-queue every 1-3 s (the poll is also the heartbeat that keeps its place) until the token is
ACTIVE. Then it is done and stays idle (with --rejoin, a new user takes its place). The original ran
10,000 users spawned at 1,000/s, then 50,000 at 2,000/s:

    loadtest/locust/run -f loadtest/locust/queue_spike.py --headless -u 10000 -r 1000 -t 60s

Fixed vs the original: everybody sent userId 12345, so all users shared one token; the token was
re-issued on every task and checked once; HTTP status 100 counted as success (it never occurs);
and the file also ran a get-concerts user with no wait time and a wrapper class that listed a
User as a task.
"""

from locust import FastHttpUser, between, task

from _common import DEFAULT_HOST, WaitingRoom


class QueueSpikeUser(WaitingRoom, FastHttpUser):
    host = DEFAULT_HOST
    wait_time = between(1, 3)
    connection_timeout = 10.0
    network_timeout = 10.0

    def on_start(self):
        self.arrive()

    @task
    def wait_in_line(self):
        self.admitted()  # one issue-token or check-queue per task

    def on_admitted(self):
        self.done()
