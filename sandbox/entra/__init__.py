"""Entra ID stand-in: OpenID discovery, /authorize without a browser, /token (auth code + PKCE, refresh, client credentials)."""
