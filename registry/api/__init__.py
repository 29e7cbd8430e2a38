"""`modelctl serve`: the HTTP API on the same service layer as the embedded registry."""
