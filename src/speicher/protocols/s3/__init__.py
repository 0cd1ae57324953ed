"""S3: an S3-compatible API over ShareFS."""
