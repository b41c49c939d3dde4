"""Test doubles that ship with Coherex (as pydantic-ai ships `models/test.py`).

`coherex.testing.fake_openai.FakeOpenAI`: a real OpenAI-compatible HTTP server on 127.0.0.1,
scripted per test; see its module docstring.
"""
