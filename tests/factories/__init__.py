"""Builders of test data shared by the test packages, one module per area: people and users,
shoot folders, and the Streamlit app under AppTest."""
