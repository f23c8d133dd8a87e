"""The PostgreSQL store: the same StoreBackend as SQLite, for catchers that share a database."""
