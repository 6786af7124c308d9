"""The park console: a web app for rangers and park operators (map, alerts, feedback, proposals, precision,
configuration, upload, audit log, ops), served by the Function app under /api/console (docs/console.md)."""
