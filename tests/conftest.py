import os

from hypothesis import settings

# Seeded, bounded property tests: the same examples every run, fast enough for CI.
settings.register_profile("imcflow", derandomize=True, max_examples=200, deadline=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "imcflow"))
