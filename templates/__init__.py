"""Templates shipped with proctorq (e-mails under ``emails/``)."""
