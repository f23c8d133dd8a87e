"""The IMAP4rev1 server: the session state machine, its syntax, MIME structure and SEARCH."""
