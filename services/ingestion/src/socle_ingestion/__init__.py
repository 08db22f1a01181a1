"""Socle ingestion service: device registry and every way readings come in: HTTP batch, LoRaWAN webhooks, MQTT."""
