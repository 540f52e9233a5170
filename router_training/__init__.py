"""Train, evaluate and export the query router; the router artifact format."""
