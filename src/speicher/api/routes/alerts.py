"""Alert settings and test messages."""

from __future__ import annotations

from fastapi import APIRouter

from speicher.api.deps import ServicesDep
from speicher.events.models import (
    AlertConditionInfo,
    AlertSettingsInfo,
    AlertSettingsUpdate,
    AlertTestResult,
)

router = APIRouter()


@router.get("/alerts/settings", tags=["alerts"], summary="Where alerts go")
def alert_settings(services: ServicesDep) -> AlertSettingsInfo:
    return services.alerts.get_settings()


@router.patch("/alerts/settings", tags=["alerts"], summary="Change where alerts go")
def update_alert_settings(req: AlertSettingsUpdate, services: ServicesDep) -> AlertSettingsInfo:
    return services.alerts.update_settings(req)


@router.post(
    "/alerts/test",
    tags=["alerts"],
    summary="Send a test message through every configured channel",
    description="Sends at once and answers what was reached; a channel that fails is a 500 "
    "problem with the mail server's or webhook's answer, no channel at all a 409.",
)
def send_test_alert(services: ServicesDep) -> AlertTestResult:
    return services.alerts.test()


@router.get(
    "/alerts/active",
    tags=["alerts"],
    summary="Conditions that raised an alert and have not ended",
)
def active_alerts(services: ServicesDep) -> list[AlertConditionInfo]:
    return services.alerts.active()
