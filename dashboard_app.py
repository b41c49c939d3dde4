"""Streamlit entry: `streamlit run dashboard_app.py` (or `make dashboard`). Reads, never writes agent state."""

from coherex.dashboard.app import main

main()
