"""Who changed what, when, with a before/after diff."""
