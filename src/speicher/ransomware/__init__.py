"""Ransomware detection and response (docs/ransomware.md)."""
