"""The audit log: who did what to which file, over every protocol, and every admin action."""
