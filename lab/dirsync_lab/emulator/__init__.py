"""HTTPS emulator of the Microsoft identity platform and Microsoft Graph, plus the lab's control API."""
