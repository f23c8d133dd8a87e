"""The Mailbox facade every layer goes through, its delivery hooks, and message composing."""
