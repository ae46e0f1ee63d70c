"""What every app shares: roles, login, navigation, health, API conventions, logging, the demo."""
