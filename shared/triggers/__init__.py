"""Thin Azure Functions Blueprints: parse input, call one service function, map the result or error."""
