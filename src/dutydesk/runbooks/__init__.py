"""Approval-gated actions: change requests with signoffs, and the kinds that run through them."""
