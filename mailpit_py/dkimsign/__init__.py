"""DKIM signing of the mail mailpit_py sends (relayed copies, `mailpit-py send`, the send API)."""
