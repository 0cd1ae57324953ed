"""Long operations as jobs with a progress figure."""

from speicher.jobs.models import JobInfo
from speicher.jobs.service import JobService, Progress

__all__ = ["JobInfo", "JobService", "Progress"]
