"""Alarms: one row per fingerprint, fired and resolved by signals, landed on tickets."""
