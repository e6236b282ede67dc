"""The test suite's settings: the site's own, in DEBUG as `make run` serves them.

The site's DEBUG is off unless ``DJANGO_DEBUG`` says otherwise (production needs no flag to be safe);
the tests run the development configuration, so this sets ``DJANGO_DEBUG=1`` before the settings are
read (processes the tests start inherit it). Tests of the production defaults start a process with
their own environment (tests/ops/test_deployment_defaults.py).
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")

from adsite.settings import *  # noqa: E402,F403

# The collect path gives Redis 0.25 s before it writes through to the database: right for a site, but on a
# loaded CI machine a healthy Redis can miss it, and the tests that count what reached the stream would see
# events written through instead. The tests of a slow or hung Redis use a server of their own and their own
# time-outs (tests/conftest.py ``private_redis_server``), so the suite's default can be patient.
TRACKING = {**TRACKING, "REDIS_SOCKET_TIMEOUT": 2.0}  # noqa: F405

# Decisions plan from counters a web process shares for up to a second (ADS["SNAPSHOT_MAX_AGE_S"]); the
# suite's tests change a budget or a spend and decide at once, and expect the decision to see it. The
# sharing itself is tested on its own (tests/ads/test_ledger.py), and the served processes of the fault and
# scale-out suites run with the site's default.
ADS = {**ADS, "SNAPSHOT_MAX_AGE_S": 0.0}  # noqa: F405
