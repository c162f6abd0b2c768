"""The weekly DevOps review: the agenda written from the desk's own data, and its marks."""
