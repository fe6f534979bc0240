"""The Streamlit workbench: one module per page under ui/pages/, routed by streamlit_app.py."""
