"""Notifications: channels, deliveries, escalation policies and contact lists."""
