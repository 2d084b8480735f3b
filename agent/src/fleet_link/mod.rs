//! The agent side of the fleet connection: one long-lived mutual-TLS websocket to the fleet server.
