"""Tickets: one open ticket per alarm fingerprint, triage, notes, links and search."""
