"""The conformance kit (placeholder until the plugins issue lands)."""

__all__: list[str] = []
