"""Network plumbing shared by the listeners: the HTTP server, loop threads, the line server, TLS."""
