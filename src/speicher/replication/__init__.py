"""Replication of shares' snapshots to another Speicher (issue 11): the stream engine so far."""
