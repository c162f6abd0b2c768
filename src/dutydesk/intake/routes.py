"""Every route of intake: the endpoints signals come in by, the API and the console."""

from __future__ import annotations

from fastapi import APIRouter

from dutydesk.intake.api import router as api_router
from dutydesk.intake.hooks import router as hooks_router
from dutydesk.intake.logs_api import router as logs_router
from dutydesk.intake.pages import router as pages_router

# Webhooks and pings: the app matches these before any other route.
machine_router = hooks_router
router = APIRouter()
router.include_router(api_router)
router.include_router(logs_router)
router.include_router(pages_router)
