"""archlab verify (filled in by its issue)."""
