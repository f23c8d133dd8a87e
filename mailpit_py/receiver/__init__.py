"""Receiver simulation: refuse at connect, MAIL, RCPT or DATA as a named real receiver would."""
