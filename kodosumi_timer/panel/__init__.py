"""The composed panel: kodosumi's Litestar app plus the schedule API and pages."""
