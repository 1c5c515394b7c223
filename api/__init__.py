"""The HTTP API: authenticate, decide access, validate, record, publish. No rule lives here."""
