"""Re-drive batches: the month's records to export again, approved as one change request."""
