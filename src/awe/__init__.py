"""awe: the AI Workflow Engine."""

__version__ = "0.1.0"
