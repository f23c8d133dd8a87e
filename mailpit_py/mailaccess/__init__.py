"""Reading the mailbox with mail clients: POP3 and IMAP, and who may log in."""
