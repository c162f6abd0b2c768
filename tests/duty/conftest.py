"""The duty tests share the notification tests' people, rotation and clock."""

from tests.notify.conftest import T0, Team, mail_server, receiver, team

__all__ = ["T0", "Team", "mail_server", "receiver", "team"]
