"""Settings shared by every test."""

from __future__ import annotations

import os

from hypothesis import settings

# CI replays a fixed set of generated examples, so a landing never hinges on what one run drew;
# local runs keep exploring (and replay what they found from .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
