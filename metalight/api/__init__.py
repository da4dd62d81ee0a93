"""Clients for remote models: OpenAI-compatible chat endpoints (API models, LLM judges)."""

from metalight.api.chat_client import ChatClient, ChatEndpoint, ChatResult

__all__ = ["ChatClient", "ChatEndpoint", "ChatResult"]
