"""Hypothesis profiles: 'ci' (default, pinned and bounded) and 'deep' (on demand).

    pytest                                  # ci profile
    pytest --hypothesis-profile=deep        # or GOLDEN_HYPOTHESIS=deep pytest
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.register_profile("deep", max_examples=20000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.load_profile(os.environ.get("GOLDEN_HYPOTHESIS", "ci"))
