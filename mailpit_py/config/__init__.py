"""Settings: the Config, its values and checks, and the credentials files."""
