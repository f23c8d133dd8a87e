"""The web UI files (HTML, JavaScript modules, CSS), shipped in the wheel as mailpit_py.web."""
