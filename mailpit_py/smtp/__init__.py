"""The SMTP listener: protocol, AUTH, access policy and chaos triggers."""
