"""The order-created event: envelope, outbox relay to RabbitMQ, consumer tail."""
