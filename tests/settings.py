"""The test suite's settings: the site's own, in DEBUG as `make run` serves them.

The site's DEBUG is off unless ``DJANGO_DEBUG`` says otherwise (production needs no flag to be safe);
the tests run the development configuration, so this sets ``DJANGO_DEBUG=1`` before the settings are
read (processes the tests start inherit it). Tests of the production defaults start a process with
their own environment (tests/ops/test_deployment_defaults.py).
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")

from adsite.settings import *  # noqa: E402,F403
