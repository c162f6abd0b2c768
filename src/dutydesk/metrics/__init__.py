"""Time series for dashboards and shift rules."""
