"""Cloud side: train, evaluate, export and version emotion models."""

__all__: list[str] = []
