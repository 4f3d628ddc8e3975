"""dorfbot: a Matrix bot for villages (marketplace, calendar, announcements, push alerts)."""

__version__ = "0.1.0"
