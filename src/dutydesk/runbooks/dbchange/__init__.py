"""Database change scripts: targets, a rolled-back dry run as evidence, an approved apply."""
