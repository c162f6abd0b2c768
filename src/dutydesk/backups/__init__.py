"""Backups that prove they restore: targets, backups, restore drills, the freshness gate."""
