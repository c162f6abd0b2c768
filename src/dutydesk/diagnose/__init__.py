"""Diagnosis: exceptions sent by Sentry SDKs, grouped into exception groups that raise alarms."""
