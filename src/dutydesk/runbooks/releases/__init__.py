"""Releases: checklist templates, release runs, release windows and broadcasts."""
