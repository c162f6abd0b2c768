"""Duty rotations: who is on duty when, and who stands in."""
