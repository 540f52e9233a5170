"""Domain text for the local models (legal, medical, code, general), one example a line."""
