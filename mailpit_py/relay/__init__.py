"""Relaying and releasing messages to a real SMTP server: its configuration, planning, sending."""
