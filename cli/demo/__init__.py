"""`proctorq demo`: drive sample traffic through a running proctorq and show what happened.

Everything goes through the HTTP API, as the LMS, the learners and the vendor would send it:

1. the LMS (a global staff token) creates the learners, a course, three proctored exams and a
   practice exam; each learner creates attempts;
2. every learner starts and submits the first exam and the practice exam;
3. the vendor (the first configured provider) reviews each first exam in turn: passing
   (verified), failing without a human reviewer (second_review_required) and failing with one
   (rejected, which declines the learner's other proctored exams);
4. the first learner declines the second exam, which declines the third by cascade.

Then it waits for the workers and prints each attempt's final status, each learner's credit
and the e-mails sent. Tokens are signed with the key `proctorq token` uses.
"""

from __future__ import annotations

from cli.demo.run import demo

__all__ = ["demo"]
