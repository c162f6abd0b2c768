"""Intake: integrations with secret URLs, the raw inbox, and the endpoints signals come in by."""
