"""Page scripts run by st.navigation; each one checks the signed-in role itself."""
