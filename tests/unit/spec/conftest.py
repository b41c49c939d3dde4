from __future__ import annotations

from pathlib import Path

import pytest

from coherex.cli import main

FIXTURES = Path(__file__).parent / "fixtures"

VALID = """\
apiVersion: coherex/v1
kind: Agent
metadata:
  name: inbox-digest
spec:
  instructions: |
    Summarise the unread mail.
  tools:
    - use: gmail.search_messages
      dataSource: work-mail
      access: read
    - use: slack.post_message
      dataSource: team-slack
      access: write
  triggers:
    - schedule:
        cron: 0 8 * * 1-5
        timezone: Europe/Berlin
  limits:
    maxSteps: 20
"""


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the real `coherex` entry point (main(): the same error handling as the console script)."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
