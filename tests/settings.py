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
