"""Test doubles that ship with Coherex (as pydantic-ai ships `models/test.py`).

- `fake_openai.FakeOpenAI`: a real OpenAI-compatible HTTP server on 127.0.0.1, scripted per test
  (text, tool calls, errors, slow answers); tests drive our real client (the `openai` SDK) at it.
- `scripted_llm.ScriptedLLM`: the same script items answered in process by an `LLMClient`, for tests
  of what the runtime or the builder does with answers; both clients pass one contract test
  (tests/integration/llm/test_llm_contract.py).
- `fake_sandbox.FakeSandbox`: an unisolated stand-in for a sandbox (the runtime's `sandbox_opener`),
  real Python in a child process; its limits are in its docstring. Isolation is tested on the real
  local sandbox server (`sandbox.start_local_sandbox`).
- `fake_saas.FakeSaaS`, `registry`, `postgres`, `postgrest`, `api.ApiServer`, `web.WebProcess`: the
  other services and processes tests run for real.
"""
