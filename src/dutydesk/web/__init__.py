"""The web process: app factory, access control, templates and static files."""
