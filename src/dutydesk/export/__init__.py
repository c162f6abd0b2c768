"""The nightly export of study records to research tables."""
