"""The Function app: creates the app and registers the Blueprints. Nothing else lives here."""

import azure.functions as func

from shared.triggers import health

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health.bp)
