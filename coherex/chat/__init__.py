"""What the Chainlit chat does with the builder (`chat_app.py` only wires these to Chainlit):

- `context`: the database, the conversation's builder, keeping its state in the thread
- `signin`: password and identity-provider sign-in
- `teams`: the team the chat works in, the team choice and switching
- `conversation`: a message as a builder turn (uploads first, `/team`), resuming a thread
- `draft_card`, `actions`: the draft card and what its buttons (and Install) do
- `attachments`: where an attached file goes (the sandbox of test runs, or the knowledge base)
- `run_view`, `render`, `approvals`: a run as steps, rich results, approval cards
- `data_layer`, `session`, `uploads`: threads in Postgres, the login cookie, empty uploads refused
"""

from coherex.chat.data_layer import CoherexDataLayer

__all__ = ["CoherexDataLayer"]
