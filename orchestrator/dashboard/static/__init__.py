"""The dashboard page: HTML, CSS and JavaScript served as package data (no network at load)."""
