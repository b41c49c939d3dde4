"""Streamlit entry: `make dashboard` (`streamlit run dashboard_app.py`); `make run` starts it too.
Reads, never writes agent state."""

from coherex.dashboard.app import main

main()
