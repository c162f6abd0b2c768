"""Every route of diagnose: the Sentry-compatible endpoints, the API and the console."""

from __future__ import annotations

from fastapi import APIRouter

from dutydesk.diagnose.api import router as api_router
from dutydesk.diagnose.ingest import router as ingest_router
from dutydesk.diagnose.pages import router as pages_router
from dutydesk.diagnose.scrape_routes import router as scrape_router
from dutydesk.diagnose.services_pages import router as services_pages_router
from dutydesk.diagnose.services_routes import router as services_router
from dutydesk.diagnose.supervisor_routes import router as supervisor_router

# SDKs send events many times a second: the app matches these before any other route.
machine_router = ingest_router
router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
router.include_router(supervisor_router)
router.include_router(services_router)
router.include_router(services_pages_router)
router.include_router(scrape_router)
