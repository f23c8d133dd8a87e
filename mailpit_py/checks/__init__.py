"""Message checks: would this mail pass a real receiver? Authentication, HTML, links,
spam score, blocklists, headers and thumbnails, each in its own module."""
