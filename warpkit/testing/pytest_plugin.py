"""pytest plugin for warpkit family authors (placeholder until the plugins issue lands)."""
