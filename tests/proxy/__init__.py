"""Tests of the caching OpenAI proxy (podmgr.proxy)."""
