"""Prometheus metrics at ``/metrics`` (docs/metrics.md): ``counters`` (the protocols' request
counters, shared with S3's worker processes), ``collector`` (everything else, read at scrape
time) and ``endpoint`` (who may scrape, and the answer)."""
