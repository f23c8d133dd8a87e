"""Storage: the SQLite backend, the stored detail's codec, and the search language and its SQL."""
