"""archlab latency (filled in by its issue)."""
