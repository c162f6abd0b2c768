"""Backups that prove they restore: targets, backups, restore drills, the freshness gate.

Other domains call the gate: `ensure_verified_backup(session, target, max_age)` before a risky
step, `verified_backup_within(...)` to ask without taking one.
"""

from dutydesk.backups.models import Backup
from dutydesk.backups.service import BackupFailed, ensure_verified_backup, verified_backup_within

__all__ = ["Backup", "BackupFailed", "ensure_verified_backup", "verified_backup_within"]
