"""What the chat's browser tests share: the web process (`coherex web`, chat at /chat), signing in,
"the chat is usable" (no stop button, the buttons enabled), waiting for the stored thread, and the
tracebacks of the server log."""

from __future__ import annotations

import asyncio
import os
import time

from coherex.testing.web import WebProcess


def serve_chat(db_urls, fake_llm, tmp_path, **extra_env: str | None):
    """Start `coherex web` on a free port; yields the chat's URL (the log is tmp_path/chainlit.log).
    `fake_llm` None, or an `extra_env` value None, leaves that setting out (None: the offline model)."""
    env = {
        "DATABASE_URL": db_urls.app,
        **({"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": fake_llm.api_key} if fake_llm else {}),
        "COHEREX_DATA_DIR": str(tmp_path / "data"),
        "COHEREX_LLM_MAX_ATTEMPTS": "1",
        **extra_env,
    }
    if fake_llm is None:  # not the developer's key either
        env.update(OPENAI_BASE_URL=None, OPENAI_API_KEY=None)
    # the real web process (`coherex web`, what `make run` serves): the chat is mounted at /chat
    with WebProcess(env, tmp_path / "chainlit.log") as web:
        yield f"{web.url}/chat"
    if os.environ.get("E2E_SHOW_LOG"):
        print(web.log())


def sandbox_env(local_sandbox) -> dict[str, str]:
    """What the web process needs to run test runs in the test session's local sandbox server."""
    from coherex.sandbox.server.run import api_key_file

    settings = local_sandbox[1]
    return {
        "COHEREX_SANDBOX": "local",
        "COHEREX_SANDBOX_PORT": str(settings.sandbox_port),
        "E2B_API_KEY": api_key_file(settings).read_text().strip(),
    }


async def login(browser, url, person, timezone_id: str | None = None):
    """A new browser context signed in to the chat at `url`, on its home screen; with
    `timezone_id`, the browser's clock is in that zone (what its Intl API reports)."""
    from playwright.async_api import expect

    zone = {"timezone_id": timezone_id} if timezone_id else {}
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900}, **zone)).new_page()
    await page.goto(url)
    await page.locator("#email").fill(person.email)
    await page.locator("#password").fill("correct horse")
    await page.locator("button[type=submit]").click()
    await expect(page.get_by_role("button", name="Csv analysis")).to_be_visible(timeout=30_000)
    return page


async def usable(page, *buttons: str) -> None:
    """The chat is not stuck "running": no stop button, and the latest of each of these buttons
    (default: Save) can be pressed."""
    from playwright.async_api import expect

    await expect(page.locator("#stop-button")).to_have_count(0, timeout=15_000)
    for name in buttons or ("Save",):
        await expect(page.get_by_role("button", name=name, exact=True).last).to_be_enabled(timeout=15_000)


async def until_saved(db, person, text: str, timeout: float = 30) -> None:
    """Wait until the person's stored threads hold `text` (with its parent step), in a thread that
    has its name: what a second login will load (Chainlit stores them in separate background writes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.session(person.identity) as s:
            for thread in await s.threads.list(limit=5):
                steps = await s.threads.steps(thread.id)
                stored = {step.id for step in steps}
                # a step shows under its parent: the parents must be stored too
                if thread.name and any(
                    text in str(step.data) and (step.parent_id is None or step.parent_id in stored)
                    for step in steps
                ):
                    return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the chat never stored {text!r} in a named thread")


def tracebacks(log: str) -> list[str]:
    """The exception line of each traceback in the server log, leaving out Starlette's "No response
    returned." from Chainlit's mount middleware when the browser closes while a request is open."""
    out = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        if "During handling of the above exception" in block or "The above exception was the direct" in block:
            continue  # a chained cause: the exception it led to is judged
        last = next((line for line in block.splitlines()[1:] if line and not line[0].isspace()), "")
        if last != "RuntimeError: No response returned.":
            out.append(last)
    return out
