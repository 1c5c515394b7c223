"""Benchmarks: each prints its figures and the ratio to a baseline measured in the same run.

They run the system under the test suite's settings (tests/support/environment.py), set here
for the benchmark's own process before any of proctorq is imported: the vendor the seeded exams
name ("acme"), the JWT secret the benchmarks' tokens are signed with, and no SMTP server, LMS
or database of the machine's own. The processes a benchmark starts get the same (``Stack``),
with the SMTP sink and LMS endpoint of the run: an app a benchmark serves imports this package
in such a process, where the settings are left as they are.
"""

import os

from tests.support.environment import STACK_MARK, TEST_ENV, UNSET

if not os.environ.get(STACK_MARK):
    os.environ.update(TEST_ENV)
    for _name in UNSET:
        os.environ.pop(_name, None)
