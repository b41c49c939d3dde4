"""The Streamlit dashboard: pages (`pages`), sign-in (`auth`) and its read-only data module (`data`)."""
