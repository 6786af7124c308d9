"""The local development stack: a Functions host, Azurite, an embedded PostgreSQL and the scoring service."""
