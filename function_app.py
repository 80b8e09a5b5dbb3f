"""The Function app: creates the app and registers the Blueprints. Nothing else lives here."""

import azure.functions as func

from shared.triggers import auth_http, health, token_refresh

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health.bp)
app.register_functions(auth_http.bp)
app.register_functions(token_refresh.bp)
