"""The use-cases the CLI, the API, the chat and the builder share: agents (validate and save a
spec), teams (members, roles, which teams a person is in) and triggers (schedules, webhooks,
events). Entry points call these; only services and the runtime talk to repositories."""
