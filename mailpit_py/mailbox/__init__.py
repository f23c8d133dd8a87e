"""The mailbox facade that SMTP, the web layer and the mail-access servers use, and message composing."""
