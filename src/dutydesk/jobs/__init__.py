"""Background jobs whose state lives in the ops database."""
