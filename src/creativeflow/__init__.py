"""CreativeFlow AI Generation Orchestrator."""

__version__ = "0.1.0"
